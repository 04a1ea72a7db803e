"""Typed configuration: YAML base + environment overlay + command-line overrides.

Precedence (later wins): ``conf/base.yml`` < ``conf/<env>.yml`` < ``--conf-file`` < ``--set a.b=c``.
Every key has a default here and a comment in ``conf/base.yml``; an unknown key or a value of
the wrong type is a :class:`ConfigError` that names the key and the file it came from.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

import yaml



def _conf_dir():
    """Where base.yml and the overlays are: $INTEREST_CONF_DIR, else the checkout's conf/, else
    the copy packaged inside the wheel (``interest_lib/_conf``; readable even from a zip on
    ``--py-files``, so ``--env cluster`` never silently falls back to defaults)."""
    if os.environ.get("INTEREST_CONF_DIR"):
        return Path(os.environ["INTEREST_CONF_DIR"])
    checkout = Path(__file__).resolve().parent.parent / "conf"
    if (checkout / "base.yml").is_file():
        return checkout
    from importlib.resources import files

    return files("interest_lib") / "_conf"


CONF_DIR = _conf_dir()
ENVIRONMENTS = ("local", "cluster", "databricks")
#: What score.migration / score.evolution may name besides an MLflow model URI.
SCORE_SOURCES = ("model", "popularity", "decayed_frequency", "markov", "persistence")


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key and source."""


@dataclass
class StorageConf:
    """Where the Delta tables live and which engine writes them."""

    warehouse: str = "./warehouse"
    """Root folder (or URI on a cluster) under which every table lives as <layer>/<name>."""
    engine: str = "auto"
    """auto | delta-spark | delta-rs. auto: Delta data source if its jars are on the classpath."""
    raw_dir: str = "./data/raw"
    """Folder of raw input files (the generator writes here, ingest reads here by default)."""
    writer_lock: bool = True
    """Jobs that write a table hold its lock file (<warehouse>/_locks) on local warehouses."""
    lock_timeout_seconds: float = 600.0
    """How long a job waits for another job's writer lock before it stops with an error."""


@dataclass
class SparkConf:
    """How the SparkSession is built when the job does not run under spark-submit/Databricks."""

    master: str = "local[*]"
    """Spark master for the embedded default; ignored when spark-submit already set one."""
    app_name: str = "interest-evolution"
    """Application name shown in the Spark UI."""
    driver_memory: str = "4g"
    """Driver heap for local mode (local mode runs executors inside the driver JVM)."""
    shuffle_partitions: int = 8
    """spark.sql.shuffle.partitions: small for a laptop, raise on a cluster."""
    arrow_batch_size: int = 10000
    """spark.sql.execution.arrow.maxRecordsPerBatch for pandas UDFs."""
    ui_enabled: bool = False
    """Start the Spark UI (port 4040) in local mode."""
    extra: dict = field(default_factory=dict)
    """Any further spark.* settings, passed through verbatim."""


@dataclass
class GenerateConf:
    """The synthetic store: catalogue, users with planted interest trajectories, dirt."""

    seed: int = 42
    """Seed: the same seed and sizes give the same data set, whatever the cluster."""
    users: int = 2000
    """Number of users."""
    mean_events_per_user: int = 120
    """Mean events per user; activity is heavy-tailed (log-normal) around it."""
    items_per_category: int = 25
    """Items per leaf category in the catalogue."""
    start_date: str = "2026-01-05"
    """First day of the generated period (UTC, ISO date; a Monday keeps weeks aligned)."""
    days: int = 84
    """Length of the generated period in days."""
    dirt_rate: float = 0.01
    """Fraction of raw records corrupted (each kind of dirt gets a share of it)."""
    duplicate_rate: float = 0.01
    """Fraction of records emitted twice (exact duplicates, same event_id)."""
    late_rate: float = 0.02
    """Fraction of records that arrive in a later day's file than the day they happened."""
    format: str = "jsonl"
    """Raw file format: jsonl | csv."""
    partitions: int = 0
    """Spark partitions used to generate users; 0 = 4 x default parallelism."""


@dataclass
class IngestConf:
    """Raw files -> bronze.events (+ bronze.events_quarantine)."""

    input: str = ""
    """Raw events path (file, folder or glob); empty = <storage.raw_dir>/events."""
    items_input: str = ""
    """Raw item catalogue path; empty = <storage.raw_dir>/items."""
    format: str = "auto"
    """auto | jsonl | csv | parquet; auto decides from the file extensions."""
    pseudonym_key: str = ""
    """Key of the keyed hash that pseudonymises user ids; used only when pseudonym_key_env is unset."""
    pseudonym_key_env: str = "INTEREST_PSEUDONYM_KEY"
    """Environment variable holding the pseudonymisation key; when set it wins over pseudonym_key."""
    pseudonym_secret_scope: str = ""
    """Databricks secret scope holding the key (read with dbutils when the variable is unset);
    empty = none."""
    pseudonym_secret_name: str = "pseudonym-key"
    """The key's name inside ``pseudonym_secret_scope``."""
    max_future_skew_minutes: int = 60
    """Events stamped later than the ingest time plus this are quarantined (clock skew)."""
    min_event_date: str = "2000-01-01"
    """Events before this date (ISO date or date-time, UTC) are quarantined as implausible."""
    columns: dict = field(default_factory=dict)
    """Raw event field -> the input's column name, for the fields named differently in the files
    (e.g. {user_id: household_key}); unmapped fields are read under their own name."""
    item_columns: dict = field(default_factory=dict)
    """The same mapping for the item catalogue's fields."""
    csv_header: bool = True
    """CSV files start with a header and columns are bound by name; false: no header, columns
    are bound by position (raw schema order, or ``ingest.columns`` naming ``_c0``, ``_c1``...)."""


@dataclass
class SessionizeConf:
    """bronze.events -> silver.sessions and silver.events_sessionized."""

    gap_minutes: int = 30
    """Inactivity gap that closes a session."""
    max_session_minutes: int = 240
    """A session is cut when an event comes later than this after the session's start."""


def _default_event_weights() -> dict:
    return {"view": 1.0, "click": 2.0, "search": 1.5, "favourite": 3.0, "cart": 4.0,
            "purchase": 6.0, "review": 5.0}


@dataclass
class FeaturesConf:
    """silver.* -> per-user interest windows (the interest profile over time)."""

    window_days: int = 7
    """Window length in days (1 = daily, 7 = weekly)."""
    step_days: int = 7
    """Days between window starts; equal to window_days = tumbling, smaller = sliding."""
    category_level: int = 3
    """Hierarchy level of the interest vector: 1 = family, 2 = subcategory, 3 = leaf."""
    event_weights: dict = field(default_factory=_default_event_weights)
    """Weight of each event type (implicit signals low, explicit ones high)."""
    decay: float = 0.5
    """Share of the previous window's profile carried into the next (exponential recency decay)."""
    min_share: float = 0.01
    """Categories whose share of a profile falls below this are dropped (keeps vectors sparse)."""
    top_k: int = 5
    """Top categories stored per window."""


@dataclass
class MigrationConf:
    """Migration detection between consecutive windows of a user."""

    js_threshold: float = 0.3
    """Jensen-Shannon divergence (base 2, 0..1) above which a window change is a migration."""
    min_events: int = 3
    """Windows with fewer events than this are not compared (too little evidence)."""
    min_swing: float = 0.2
    """The new top category must gain, and the old one lose, at least this share."""
    min_group_size: int = 5
    """gold.migration_flows (and the notebooks' counts) hide groups with fewer users than this
    (privacy); at least 2."""
    flow_level: str = "auto"
    """Hierarchy level of gold.migration_flows: 0 = as detected, k = the category path's first k
    levels (1 = families / departments), auto = the finest level whose published cells hold at
    least flow_auto_coverage of the migrations (else the level holding the most)."""
    flow_auto_coverage: float = 0.5
    """With flow_level auto: share of the migrations that published cells must hold."""


@dataclass
class PrivacyConf:
    """Differential privacy of published counts (gold.migration_flows); see interest_lib.privacy."""

    dp_epsilon: Optional[float] = None
    """ε of each release; null = exact counts (still suppressed under migration.min_group_size)."""
    dp_max_cells_per_user: int = 1
    """Flow cells one user may count in under DP (their latest migrations): the noise's sensitivity."""


@dataclass
class StagesConf:
    """Evolution stage of each (user, category) interest from its weight trajectory."""

    lookback_windows: int = 4
    """Windows of history used for level, trend and persistence."""
    active_share: float = 0.1
    """A category is active in a window when its share is at least this."""
    trend_threshold: float = 0.05
    """Share change per window above which an interest is growing (below minus it: fading)."""


@dataclass
class EmbeddingsConf:
    """Text embeddings of item titles / descriptions and event texts."""

    model: str = ""
    """Hugging Face model name or local path; empty = bundled all-MiniLM-L6-v2 (offline)."""
    batch_size: int = 64
    """Texts per forward pass."""
    max_length: int = 128
    """Tokens per text; longer texts are truncated."""
    device: str = "auto"
    """auto (CUDA when present) | cpu | cuda."""


@dataclass
class SequencesConf:
    """gold.training_sequences: fixed-length inputs and labels for the models."""

    max_events: int = 50
    """Events per sequence (left-padded)."""
    max_windows: int = 8
    """Window vectors per sequence (left-padded)."""
    validation_days: int = 7
    """Last days before the test period used for validation cut-offs."""
    test_days: int = 7
    """Final days used for test cut-offs (strictly after training data)."""


@dataclass
class TrainConf:
    """Distributed training of the migration and evolution models."""

    migration_model: str = "migration_transformer"
    """Registered migration model: migration_transformer | migration_augru."""
    evolution_model: str = "evolution_gru"
    """Registered evolution model: evolution_gru."""
    backend: str = "torch_distributor"
    """Distributed backend: torch_distributor (PyTorch DDP) | horovod (horovod.spark.run over
    gloo; card env only, scripts/install_card_env.sh)."""
    feed: str = "delta"
    """Training feed: delta (the snapshot's Parquet files streamed into torch, no copy) |
    petastorm (make_batch_reader over the same files; card env only)."""
    num_processes: int = 2
    """Training processes (DDP ranks); on a cluster, one per executor slot or GPU."""
    local_mode: bool = True
    """True: ranks run on the driver; False: in barrier tasks on the executors."""
    use_gpu: str = "auto"
    """auto (CUDA when present) | cpu | cuda."""
    epochs: int = 8
    """Maximum epochs (early stopping may end sooner)."""
    batch_size: int = 128
    """Samples per step per rank."""
    learning_rate: float = 0.003
    """AdamW learning rate."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    patience: int = 2
    """Epochs without validation improvement before early stopping."""
    shuffle_buffer: int = 4096
    """Rows held by the feed for shuffling."""
    seed: int = 7
    """Seed of initialisation, shuffling and dropout: same seed + data => same model."""
    torch_threads: int = 0
    """Intra-op threads per rank; 0 = cores / num_processes."""
    store: str = "./runs"
    """Run store: checkpoints, final models, lineage and per-epoch metrics under <store>/<run_id>."""


@dataclass
class MigrationTransformerParams:
    """Causal Transformer over recent events (SASRec / TiSASRec family)."""

    d_model: int = 64
    """Width of every embedding and hidden state."""
    heads: int = 2
    """Attention heads."""
    layers: int = 2
    """Transformer blocks."""
    dropout: float = 0.1
    """Dropout in embeddings and blocks."""
    use_text: bool = True
    """Add the items' and event texts' sentence embeddings (projected) to each event."""
    switch_weight: float = 0.3
    """Weight of the P(switch) loss."""
    aux_weight: float = 0.5
    """Weight of the next-event loss at every earlier position (denser supervision)."""


@dataclass
class MigrationAugruParams:
    """GRU interest extractor + attention-gated GRU (DIEN's AUGRU) over recent events."""

    hidden: int = 64
    """Width of embeddings and GRU states."""
    dropout: float = 0.1
    """Dropout on the event embeddings."""
    use_text: bool = True
    """Add the items' and event texts' sentence embeddings (projected) to each event."""
    switch_weight: float = 0.3
    """Weight of the P(switch) loss."""
    aux_weight: float = 0.5
    """Weight of DIEN's auxiliary loss: each extractor state predicts the next behaviour."""


@dataclass
class EvolutionGruParams:
    """GRU over the last window interest vectors: next window's distribution and stage."""

    hidden: int = 64
    """Width of the window projection and GRU state."""
    dropout: float = 0.1
    """Dropout on the window projection."""
    stage_weight: float = 0.3
    """Weight of the stage cross-entropy beside the JS-divergence forecast loss."""
    scorer_hidden: int = 64
    """Width of the per-category scorer MLP (shared by all categories)."""


@dataclass
class ModelsConf:
    """Hyper-parameters, one block per registered model (found by name from train.*_model)."""

    migration_transformer: MigrationTransformerParams = field(default_factory=MigrationTransformerParams)
    """Default migration model."""
    migration_augru: MigrationAugruParams = field(default_factory=MigrationAugruParams)
    """Alternative migration model."""
    evolution_gru: EvolutionGruParams = field(default_factory=EvolutionGruParams)
    """Default evolution model."""


@dataclass
class TrackingConf:
    """MLflow tracking of training runs."""

    enabled: bool = True
    """Log every training run (params, per-epoch metrics, table version, model) to MLflow."""
    uri: str = ""
    """Tracking URI; "" = a local file store at <train.store>/mlruns; "databricks" on Databricks."""
    experiment: str = "interest-evolution"
    """Experiment name (a workspace path such as /Shared/interest-evolution on Databricks)."""


@dataclass
class ScoreConf:
    """Scoring every user inside Spark into gold.user_interest_scores and gold.recommendations."""

    as_of: str = ""
    """Score as of this UTC time (ISO); "" = the end of the window holding the last event."""
    migration: str = "model"
    """What predicts the next category: model (newest trained run), an MLflow model URI
    (runs:/..., models:/...), or a baseline name (popularity | decayed_frequency | markov | persistence)."""
    evolution: str = "model"
    """What forecasts the next window: model (newest trained run), an MLflow model URI, or a baseline name."""
    top_k: int = 10
    """Next categories (with probabilities) stored per user."""
    forecast_k: int = 5
    """Entries of the forecast next-window distribution stored per user."""
    batch_size: int = 1024
    """Rows per forward pass inside the scoring UDF (Arrow batches come from spark.arrow_batch_size)."""
    device: str = "auto"
    """auto (CUDA when present) | cpu | cuda, in each Python worker."""
    recommendations: int = 10
    """Categories recommended per user."""
    explore_share: float = 0.3
    """Share of the recommendation slots given to exploration (likely migrations)."""


@dataclass
class RunConf:
    """Identity of one run of a job (lineage and idempotent writes)."""

    run_id: str = ""
    """Run identifier; empty = derived from the job and its inputs. Reruns with the same id
    never duplicate rows."""
    log_level: str = "INFO"
    """Python log level for interest_lib."""


@dataclass
class Config:
    """The whole configuration; one section per stage of the data flow."""

    storage: StorageConf = field(default_factory=StorageConf)
    spark: SparkConf = field(default_factory=SparkConf)
    generate: GenerateConf = field(default_factory=GenerateConf)
    ingest: IngestConf = field(default_factory=IngestConf)
    sessionize: SessionizeConf = field(default_factory=SessionizeConf)
    features: FeaturesConf = field(default_factory=FeaturesConf)
    migration: MigrationConf = field(default_factory=MigrationConf)
    privacy: PrivacyConf = field(default_factory=PrivacyConf)
    stages: StagesConf = field(default_factory=StagesConf)
    embeddings: EmbeddingsConf = field(default_factory=EmbeddingsConf)
    sequences: SequencesConf = field(default_factory=SequencesConf)
    train: TrainConf = field(default_factory=TrainConf)
    models: ModelsConf = field(default_factory=ModelsConf)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    score: ScoreConf = field(default_factory=ScoreConf)
    run: RunConf = field(default_factory=RunConf)

    env: ClassVar[str] = "local"
    """The overlay this configuration was loaded with (set by :func:`load_config`; not a YAML key)."""

    def to_dict(self, redact: bool = True) -> dict:
        """Plain nested dict for logging; secrets are replaced by ``***`` unless redact=False."""
        data = dataclasses.asdict(self)
        if redact and data["ingest"]["pseudonym_key"]:
            data["ingest"]["pseudonym_key"] = "***"
        return data


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, typ: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        return None if value is None else _coerce(value, args[0], key, source)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif typ is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, (dt.date, dt.datetime)):  # YAML reads 2001-01-01 as a date
            return value.isoformat()
    elif typ is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
    raise ConfigError(
        f"{source}: key '{key}' expects {getattr(typ, '__name__', typ)}, got {value!r}"
    )


def _merge_into(obj: Any, data: dict, source: str, prefix: str = "") -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: '{prefix or '<root>'}' must be a mapping, got {data!r}")
    ftypes = _field_types(type(obj))
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in ftypes:
            known = ", ".join(sorted(ftypes))
            raise ConfigError(f"{source}: unknown key '{path}' (known here: {known})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge_into(current, value or {}, source, prefix=f"{path}.")
        elif isinstance(current, dict) and isinstance(value, dict):
            current.update(_flatten(value) if key == "extra" else value)
        else:
            setattr(obj, key, _coerce(value, ftypes[key], path, source))


def _flatten(data: dict, prefix: str = "") -> dict:
    """Nested mappings as dotted keys: ``--set spark.extra.spark.executor.memory=8g`` arrives as
    {"spark": {"executor": {"memory": "8g"}}} and means {"spark.executor.memory": "8g"}."""
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _parse_override(text: str) -> dict:
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. generate.users=500")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    nested: dict = {}
    node = nested
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return nested


def _read_yaml(path) -> dict:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def load_config(
    env: Optional[str] = None,
    conf_file: Optional[str] = None,
    overrides: Optional[list[str]] = None,
    conf_dir=CONF_DIR,
) -> Config:
    """Load the configuration.

    Args:
        env: overlay name (local | cluster | databricks); default ``$INTEREST_ENV`` or ``local``.
        conf_file: an extra YAML file applied after the overlay (e.g. a job's own settings).
        overrides: ``a.b=c`` strings applied last; values are parsed as YAML scalars.
        conf_dir: folder holding ``base.yml`` and the overlays.

    Returns:
        A fully typed :class:`Config`.
    """
    env = env or os.environ.get("INTEREST_ENV", "local")
    if env not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment '{env}' (choose one of {', '.join(ENVIRONMENTS)})")
    conf = Config()
    sources = [conf_dir / "base.yml", conf_dir / f"{env}.yml"]
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise ConfigError(f"configuration file(s) not found: {', '.join(missing)} (set INTEREST_CONF_DIR "
                          "to the folder holding base.yml and the overlays)")
    if conf_file:
        if not Path(conf_file).is_file():
            raise ConfigError(f"--conf-file {conf_file}: no such file")
        sources.append(Path(conf_file))
    for path in sources:
        if path.is_file():
            _merge_into(conf, _read_yaml(path), str(path))
    for text in overrides or []:
        _merge_into(conf, _parse_override(text), f"--set {text}")
    _validate(conf)
    conf.env = env
    return conf


@dataclass(frozen=True)
class Limit:
    """What values one setting accepts: bounds (``ge``, ``gt``, ``le``, ``lt``), a set of
    ``choices`` (compared case-insensitively when ``ignore_case``), or ``nonempty`` text."""

    ge: Optional[float] = None
    gt: Optional[float] = None
    le: Optional[float] = None
    lt: Optional[float] = None
    choices: tuple = ()
    ignore_case: bool = False
    nonempty: bool = False

    def problem(self, value: Any) -> Optional[str]:
        """Why ``value`` is refused (``"must be >= 0"``), or None when it is accepted."""
        if self.nonempty and not str(value).strip():
            return "must not be empty"
        if self.choices:
            probe = value.upper() if self.ignore_case and isinstance(value, str) else value
            if probe not in self.choices:
                return "allowed: " + ", ".join(map(str, self.choices))
        for op, bound, ok in ((">=", self.ge, lambda v, b: v >= b), (">", self.gt, lambda v, b: v > b),
                              ("<=", self.le, lambda v, b: v <= b), ("<", self.lt, lambda v, b: v < b)):
            if bound is not None and not (value == value and ok(value, bound)):  # NaN fails every bound
                return f"must be {op} {bound:g}"
        return None


_SHARE = Limit(ge=0, le=1)
#: Limits of settings not covered by the checks in :func:`_validate`, enforced in one place by
#: :func:`_check_limits`; a refused value stops load_config with the key and the value.
LIMITS: dict[str, Limit] = {
    "storage.warehouse": Limit(nonempty=True),
    "storage.raw_dir": Limit(nonempty=True),
    "spark.shuffle_partitions": Limit(ge=1),
    "spark.arrow_batch_size": Limit(ge=1),
    "generate.items_per_category": Limit(ge=1),
    "generate.dirt_rate": _SHARE,
    "generate.duplicate_rate": _SHARE,
    "generate.late_rate": _SHARE,
    "generate.partitions": Limit(ge=0),
    "ingest.max_future_skew_minutes": Limit(ge=0),
    "features.min_share": Limit(ge=0, lt=1),
    "migration.js_threshold": _SHARE,
    "migration.min_events": Limit(ge=1),
    "migration.min_swing": _SHARE,
    "migration.flow_auto_coverage": _SHARE,
    "stages.lookback_windows": Limit(ge=1),
    "stages.active_share": _SHARE,
    "stages.trend_threshold": Limit(ge=0),
    "embeddings.max_length": Limit(ge=1),
    "sequences.validation_days": Limit(ge=1),
    "sequences.test_days": Limit(ge=1),
    "train.learning_rate": Limit(gt=0),
    "train.weight_decay": Limit(ge=0),
    "train.patience": Limit(ge=0),
    "train.shuffle_buffer": Limit(ge=1),
    "train.torch_threads": Limit(ge=0),
    "models.migration_transformer.d_model": Limit(ge=1),
    "models.migration_transformer.heads": Limit(ge=1),
    "models.migration_transformer.layers": Limit(ge=1),
    "models.migration_transformer.dropout": Limit(ge=0, lt=1),
    "models.migration_augru.hidden": Limit(ge=1),
    "models.migration_augru.dropout": Limit(ge=0, lt=1),
    "models.evolution_gru.hidden": Limit(ge=1),
    "models.evolution_gru.dropout": Limit(ge=0, lt=1),
    "models.evolution_gru.scorer_hidden": Limit(ge=1),
    "run.log_level": Limit(choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), ignore_case=True),
}


def _check_limits(conf: Config) -> None:
    """Refuse the first setting outside its :data:`LIMITS`, naming the key and the value."""
    for key, limit in LIMITS.items():
        value = conf
        for part in key.split("."):
            value = getattr(value, part)
        why = limit.problem(value)
        if why:
            raise ConfigError(f"key '{key}' is {value!r}: {why}")


def _validate(conf: Config) -> None:
    _check_limits(conf)
    choices = {
        "storage.engine": (conf.storage.engine, ("auto", "delta-spark", "delta-rs")),
        "generate.format": (conf.generate.format, ("jsonl", "csv")),
        "ingest.format": (conf.ingest.format, ("auto", "jsonl", "csv", "parquet")),
        "embeddings.device": (conf.embeddings.device, ("auto", "cpu", "cuda")),
        "features.category_level": (conf.features.category_level, (1, 2, 3)),
        "train.backend": (conf.train.backend, ("torch_distributor", "horovod")),
        "train.feed": (conf.train.feed, ("delta", "petastorm")),
        "train.use_gpu": (conf.train.use_gpu, ("auto", "cpu", "cuda")),
        "train.migration_model": (conf.train.migration_model, ("migration_transformer", "migration_augru")),
        "train.evolution_model": (conf.train.evolution_model, ("evolution_gru",)),
        "score.device": (conf.score.device, ("auto", "cpu", "cuda")),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"key '{key}' is {value!r}; allowed: {', '.join(map(str, allowed))}")
    positive = {
        "generate.users": conf.generate.users,
        "generate.mean_events_per_user": conf.generate.mean_events_per_user,
        "generate.days": conf.generate.days,
        "sessionize.gap_minutes": conf.sessionize.gap_minutes,
        "sessionize.max_session_minutes": conf.sessionize.max_session_minutes,
        "features.window_days": conf.features.window_days,
        "features.top_k": conf.features.top_k,
        "embeddings.batch_size": conf.embeddings.batch_size,
        "sequences.max_events": conf.sequences.max_events,
        "sequences.max_windows": conf.sequences.max_windows,
        "train.num_processes": conf.train.num_processes,
        "train.epochs": conf.train.epochs,
        "train.batch_size": conf.train.batch_size,
        "score.top_k": conf.score.top_k,
        "score.forecast_k": conf.score.forecast_k,
        "score.batch_size": conf.score.batch_size,
        "score.recommendations": conf.score.recommendations,
    }
    if conf.storage.lock_timeout_seconds < 0:
        raise ConfigError(f"key 'storage.lock_timeout_seconds' must be >= 0, got "
                          f"{conf.storage.lock_timeout_seconds}")
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"key '{key}' must be > 0, got {value}")
    f = conf.features
    if not 0 < f.step_days <= f.window_days:
        raise ConfigError(f"features.step_days must be in 1..window_days ({f.window_days}), got {f.step_days}")
    for key in ("migration", "evolution"):
        value = getattr(conf.score, key)
        if value not in SCORE_SOURCES and ":/" not in value:
            raise ConfigError(f"key 'score.{key}' is {value!r}; allowed: {', '.join(SCORE_SOURCES)} or an MLflow model URI")
    if not 0 <= conf.score.explore_share <= 1:
        raise ConfigError(f"score.explore_share must be in [0, 1], got {conf.score.explore_share}")
    if conf.migration.min_group_size < 2:
        raise ConfigError(f"key 'migration.min_group_size' must be >= 2 (a smaller value publishes groups of a "
                          f"single user), got {conf.migration.min_group_size}")
    level = str(conf.migration.flow_level).strip().lower()
    if level != "auto" and not level.isdigit():
        raise ConfigError(f"key 'migration.flow_level' is {conf.migration.flow_level!r}; allowed: auto or a "
                          f"level 0, 1, 2, ... (0 = as detected, 1 = families / departments)")
    eps = conf.privacy.dp_epsilon
    if eps is not None and not (0 < eps < float("inf")):
        raise ConfigError(f"key 'privacy.dp_epsilon' must be a positive number or null (off), got {eps}")
    if conf.privacy.dp_max_cells_per_user < 1:
        raise ConfigError(f"key 'privacy.dp_max_cells_per_user' must be >= 1, got {conf.privacy.dp_max_cells_per_user}")
    if not 0 <= f.decay < 1:
        raise ConfigError(f"features.decay must be in [0, 1), got {f.decay}")
    from interest_lib.schema import EVENT_TYPES, RAW_FIELDS, RAW_ITEM_FIELDS

    unknown = set(f.event_weights) - set(EVENT_TYPES)
    missing = set(EVENT_TYPES) - set(f.event_weights)
    if unknown or missing:
        raise ConfigError(f"features.event_weights: unknown types {sorted(unknown)}, missing {sorted(missing)}")
    for key, fields in (("ingest.columns", RAW_FIELDS), ("ingest.item_columns", RAW_ITEM_FIELDS)):
        setattr(conf.ingest, key.split(".")[1], _column_mapping(getattr(conf.ingest, key.split(".")[1]), fields, key))
    _check_date("ingest.min_event_date", conf.ingest.min_event_date)
    _check_date("generate.start_date", conf.generate.start_date, date_only=True)
    if conf.score.as_of:
        _check_date("score.as_of", conf.score.as_of)


def _check_date(key: str, value: str, date_only: bool = False) -> None:
    """An ISO date (``2001-01-01``) or, unless ``date_only``, date-time (``2001-01-01T06:00:00Z``)."""
    try:
        if date_only:
            dt.date.fromisoformat(value)
        else:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise ConfigError(f"key '{key}' is {value!r}: expected an ISO date such as 2001-01-01"
                          + ("" if date_only else " or a date-time such as 2001-01-01T06:00:00Z")) from None


def _column_mapping(mapping: dict, fields, key: str) -> dict:
    """``ingest.columns``-style mapping checked: raw field names as keys, distinct non-empty
    column names (as strings) as values."""
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ConfigError(f"{key}: unknown raw field(s) {unknown}; the raw fields are {', '.join(fields)}")
    out = {}
    for name, column in mapping.items():
        if column is None or isinstance(column, (bool, dict, list)) or not str(column).strip():
            raise ConfigError(f"{key}.{name}: expected the input's column name, got {column!r}")
        out[name] = str(column).strip()
    taken = [c for c in out.values() if list(out.values()).count(c) > 1]
    if taken:
        raise ConfigError(f"{key}: column(s) {sorted(set(taken))} mapped to more than one raw field")
    return out
