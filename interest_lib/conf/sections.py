"""The configuration's sections: one typed dataclass per stage of the data flow, whose fields
document themselves (``conf/base.yml`` repeats each default with a comment; a test keeps the two
equal). The ``models`` section is :class:`~interest_lib.conf.models.ModelsConf`: one block per
model, declared by the model's own module and YAML file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar, Optional

from interest_lib.conf.models import ModelsConf


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
    delta_package: str = ""
    """Maven coordinates of the Delta jars a local session loads for engine delta-spark;
    "" = those delta-spark's own configure_spark_with_delta_pip names for the installed
    delta-spark and pyspark."""
    ivy_cache: str = ""
    """Ivy folder (spark.jars.ivy) the Delta jars are resolved into once; "" =
    $XDG_CACHE_HOME/interest-evolution/ivy/pyspark-<version> (~/.cache/...; one per pyspark
    version, so the two environments never resolve into one folder at once)."""
    optimize_tables: str = "bronze.events,silver.events_sessionized,silver.sessions"
    """Comma-separated tables `interest optimize` compacts (and vacuums)."""
    zorder_by: dict = field(default_factory=lambda: {
        "silver.events_sessionized": "user_id", "silver.sessions": "user_id"})
    """table -> comma-separated columns `interest optimize` Z-orders it by (others: compacted)."""
    vacuum_retention_hours: float = 168.0
    """`interest optimize` deletes files no version younger than this still needs (time travel
    to older versions stops working); 0 only with care."""


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
    bot_events: int = 0
    """Events of one extra bot user (:data:`~interest_lib.generate.skew.BOT_USER`): views and
    clicks around the clock, spread over the period; 0 = no bot. A skew test: 1000000."""
    viral_item_share: float = 0.0
    """Share of all events (the bot's too) re-pointed to one viral item
    (:data:`~interest_lib.generate.skew.VIRAL_ITEM` rank 0 of the most popular leaf); 0 = none.
    A skew test: 0.2."""


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
    max_events_per_user_day: int = 1000
    """Valid events of one user on one UTC day beyond this are quarantined
    (``user_day_over_cap``; the earliest ones are kept): a bot or a replayed feed must not
    become one task's whole stage downstream. 0 = no cap."""
    report_heavy: int = 5
    """Users over the daily cap and items above ``heavy_item_share`` listed in the ingest report."""
    heavy_item_share: float = 0.05
    """An item with at least this share of the accepted events is listed in the ingest report."""
    quarantine_rows_per_file: int = 1_000_000
    """A batch's quarantined events (and, apart, its quarantined catalogue rows) are written as
    ceil(rows / this) files of equal size, however many splits the input was read in (a few bad
    rows in each of thousands of splits would otherwise be thousands of tiny files per batch)."""
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
    max_windows: int = 32
    """Window vectors per sequence (left-padded)."""
    validation_days: int = 7
    """Last days before the test period used for validation cut-offs."""
    test_days: int = 7
    """Final days used for test cut-offs (strictly after training data)."""


@dataclass
class TrainConf:
    """Distributed training of the migration and evolution models."""

    migration_model: str = "migration_transformer"
    """Migration model, by name (conf/models/<name>.yml): migration_transformer | migration_augru."""
    evolution_model: str = "evolution_gru"
    """Evolution model, by name (conf/models/<name>.yml): evolution_gru."""
    backend: str = "torch_distributor"
    """Distributed backend: torch_distributor (PyTorch DDP) | horovod (horovod.spark.run over
    gloo; card env only, scripts/install_card_env.sh) | driver (one rank in the driver process,
    no torchrun: num_processes 1, local_mode true)."""
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
    warm_start_epochs: int = 1
    """Maximum epochs of a warm start (``interest train --warm-start``: continue the latest run on
    a newer table version)."""
    warm_start_lr_scale: float = 0.3
    """A warm start's learning rate, as a fraction of ``learning_rate``: it refines a trained model,
    so it steps more gently than a run from scratch (chosen by bench/rolling.py on weeks before the
    ones it reports)."""
    batch_size: int = 128
    """Samples per step per rank."""
    learning_rate: float = 0.003
    """AdamW learning rate."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    patience: int = 2
    """Epochs without validation improvement before early stopping."""
    min_delta: float = 1e-5
    """Early stopping: a validation score counts as an improvement only when it beats the best
    so far by more than this."""
    grad_clip_norm: float = 5.0
    """Gradients are clipped to this total L2 norm before each optimizer step; 0 = no clipping."""
    lr_schedule: str = "constant"
    """Learning rate over the run: constant | cosine (per step from ``learning_rate`` down to
    zero at the last of ``epochs``; computed from the step number, so a resumed run follows it)."""
    ema_decay: float = 0.999
    """Exponential moving average of the weights (Polyak averaging): validated, checkpointed and
    saved instead of the raw weights; 0 = off. The decay warms up as min(ema_decay, (1+n)/(10+n))
    after n steps, so the average forgets the initial weights within the first epoch."""
    shuffle_buffer: int = 4096
    """Rows held by the feed for shuffling."""
    seed: int = 7
    """Seed of initialisation, shuffling and dropout: same seed + data => same model."""
    torch_threads: int = 0
    """Intra-op threads per rank; 0 = cores / num_processes."""
    store: str = "./runs"
    """Run store: checkpoints, final models, lineage and per-epoch metrics under <store>/<run_id>."""


@dataclass
class TrackingConf:
    """MLflow tracking of training runs."""

    enabled: bool = True
    """Log every training run (params, per-epoch metrics, table version, model) to MLflow."""
    uri: str = ""
    """Tracking URI; "" = a local file store at <train.store>/mlruns; "databricks" on Databricks."""
    experiment: str = "interest-evolution"
    """Experiment name (a workspace path such as /Shared/interest-evolution on Databricks)."""


def _default_targets() -> dict:
    return {"migration": {"all": {"ndcg@10": 0.10}, "switch": {"ndcg@10": 0.20}},
            "evolution": {"all": {"js": 0.10, "stage_acc": 0.10}}}


@dataclass
class EvaluateConf:
    """Evaluation of the trained models beside the baselines (gold.model_metrics)."""

    targets: dict = field(default_factory=_default_targets)
    """Gain over the best baseline each model should reach, as task -> slice -> metric -> gain:
    relative (0.10 = 10% better; for js, 10% lower), except stage_acc, in points above the
    majority stage (0.10 = 10 points). Printed as MET / NOT MET with the user-clustered
    bootstrap 95% CI of the gain; MET needs the gain and a CI above zero."""


@dataclass
class ScoreConf:
    """Scoring every user inside Spark into gold.user_interest_scores and gold.recommendations."""

    as_of: str = ""
    """Score as of this UTC time (ISO); "" = the end of the window holding the last event."""
    migration: str = "model"
    """What predicts the next category: model (newest trained run), an MLflow model URI
    (runs:/..., models:/...), a baseline name (popularity | decayed_frequency | markov |
    persistence | personal_frequency), or an event-level model fitted at scoring time on the
    events before as_of (event:learned_ranker | event:tifu_knn | event:personal_frequency | ...;
    batch scoring only: interest_lib.scoring.event_models)."""
    evolution: str = "model"
    """What forecasts the next window: model (newest trained run), an MLflow model URI, or a baseline name."""
    event_refit_days: float = 7.0
    """An event-level score.migration reuses the fit (settings, the learned ranker's network) kept
    in the run store by a run at most this many days before as_of (never after it) on the same
    events table and model code, rebuilding only its state from the events before as_of; older:
    fitted again and kept (interest_lib.scoring.event_fits). 0 = fit at every run, keep nothing."""
    event_ranker: str = ""
    """Settings of event:learned_ranker's network, ``key=value,...`` of RankerParams as for
    ``interest evaluate --protocol event --ranker`` ("" = its defaults, chosen on Complete
    Journey's validation period): e.g. ``epochs=5`` trains each network at most 5 epochs instead
    of 12, about 2.5 times faster for about half a point of NDCG@10 there. A kept fit is reused
    only by runs with the same settings."""
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
    cold_start: bool = True
    """Score users without a complete window (new users) on the cold-start path
    (interest_lib.scoring.cold_start); false: they are not eligible."""
    cold_start_max_events: int = 50
    """Latest events of a cold user the cold-start path reads."""
    cold_start_own_weight: float = 0.05
    """Cold start: weight of the categories the user touched (the four cold-start settings:
    chosen on Complete Journey's validation arrivals by bench/cold_start.py)."""
    cold_start_text_weight: float = 0.4
    """Cold start: weight of the categories whose item text is close to what the user touched."""
    cold_start_popularity_weight: float = 0.8
    """Cold start: weight of recent popularity."""
    cold_start_temperature: float = 0.3
    """Cold start: softmax temperature of the text similarities."""
    cold_start_popularity_days: int = 28
    """Cold start: days before the as-of time whose events make the popularity prior."""


@dataclass
class StreamConf:
    """``interest stream``: Structured Streaming from a landing folder (or Kafka) to fresh scores."""

    source: str = "files"
    """files (a landing folder of JSON-lines files) | kafka (one raw event as JSON per message)."""
    landing: str = ""
    """Landing folder the file source watches; "" = <storage.raw_dir>/landing."""
    max_files_per_trigger: int = 100
    """Files one micro-batch takes at most from the landing folder (the Auto Loader pattern)."""
    kafka_bootstrap_servers: str = ""
    """Kafka bootstrap servers (host:port,...) for source kafka."""
    kafka_topic: str = "interest-events"
    """Kafka topic holding the raw events (JSON values)."""
    kafka_starting_offsets: str = "earliest"
    """Where a new query starts reading the topic: earliest | latest."""
    max_offsets_per_trigger: int = 100000
    """Kafka messages one micro-batch takes at most."""
    kafka_package: str = "org.apache.spark:spark-sql-kafka-0-10_2.13"
    """Maven coordinate (without version: the running Spark's is used) of the Kafka source,
    resolved through spark.jars.packages when it is not on the classpath."""
    trigger: str = "processing_time"
    """processing_time (long-running, a micro-batch every trigger_seconds) | available_now
    (process what is there, in several micro-batches, then stop: scheduled runs) | once."""
    trigger_seconds: float = 0.0
    """Interval between micro-batches with trigger processing_time; 0 = as soon as the previous ends."""
    watermark_minutes: int = 1440
    """Events older than the latest event time in bronze.events minus this are quarantined
    (late_event) instead of being appended; duplicates are checked against bronze.events."""
    checkpoint: str = ""
    """Checkpoint folder of the query (offsets, commits); "" = <storage.warehouse>/_checkpoints/<query_name>."""
    query_name: str = "interest-stream"
    """Query name; also the Delta app id of its idempotent appends (version = micro-batch id)."""
    score: bool = True
    """Rescore the touched users into gold.user_interest_scores each micro-batch (needs ref.vocab
    from featurize, gold.training_sequences, and trained models or baseline score sources)."""
    timeout_seconds: float = 0.0
    """Stop a processing_time query after this many seconds; 0 = run until stopped."""
    small_batch_sql: bool = True
    """Run the micro-batches with Spark SQL expressions interpreted (no code generation) and
    without adaptive query execution (:data:`interest_lib.streaming.job.SMALL_BATCH_SQL`; a key
    that ``spark.extra`` or the launch sets wins). A micro-batch is some 290 small Spark stages over the touched
    users' rows, where compiling generated code and re-planning cost more than they save."""


@dataclass
class MonitorConf:
    """Drift monitoring: each scoring run appends the served model and the best baseline on the
    latest complete week to gold.model_metrics (``series`` drift); ``interest monitor`` judges the series."""

    drift: bool = True
    """Every ``interest score`` run appends the week's drift rows (needs a trained model as the
    score source of ``monitor.task``; baselines-only scoring appends none)."""
    task: str = "migration"
    """The monitored task: migration | evolution."""
    slice: str = "all"
    """The monitored slice: all | switch (migration only)."""
    metric: str = "ndcg@10"
    """The monitored metric: hr@1, hr@5, hr@10, ndcg@10, mrr (migration) | js, stage_acc (evolution)."""
    weeks: int = 2
    """``interest monitor`` exits 1 (retrain) when the model is below the best baseline on each
    of the latest N weeks of the series."""


@dataclass
class ReportConf:
    """The HTML run report (``interest report``, last step of ``interest run``)."""

    enabled: bool = True
    """Write the report as the last step of ``interest run``."""
    dir: str = "./reports"
    """Folder of the reports: ``<dir>/<run>/report.html`` and the run's ``run.json`` (table versions, step times)."""
    heatmap_level: int = 1
    """Rows of the heat map: 1 = families (first level of the category path), k = first k levels, 0 = categories as profiled."""
    lookup_users: int = 50
    """Pseudonymous users embedded in the page's user lookup (0 = no lookup)."""
    lookup_seed: int = 7
    """Seed of the lookup sample (the users with the smallest hash of seed and id are chosen)."""


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
    """Hyper-parameters of every model, ``models.<name>.<key>`` (defaults: conf/models/<name>.yml)."""
    tracking: TrackingConf = field(default_factory=TrackingConf)
    evaluate: EvaluateConf = field(default_factory=EvaluateConf)
    score: ScoreConf = field(default_factory=ScoreConf)
    stream: StreamConf = field(default_factory=StreamConf)
    monitor: MonitorConf = field(default_factory=MonitorConf)
    report: ReportConf = field(default_factory=ReportConf)
    run: RunConf = field(default_factory=RunConf)

    env: ClassVar[str] = "local"
    """The overlay this configuration was loaded with (set by :func:`load_config`; not a YAML key)."""

    def to_dict(self, redact: bool = True) -> dict:
        """Plain nested dict for logging; secrets are replaced by ``***`` unless redact=False."""
        data = {f.name: (getattr(self, f.name).to_dict() if f.name == "models"
                         else dataclasses.asdict(getattr(self, f.name))) for f in dataclasses.fields(self)}
        if redact and data["ingest"]["pseudonym_key"]:
            data["ingest"]["pseudonym_key"] = "***"
        return data

