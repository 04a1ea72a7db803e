"""What values each setting accepts: :data:`LIMITS`, one table of every range and choice check,
plus the few structural checks a table cannot express (event weights, column mappings, dates,
evaluation targets). A refused value stops :func:`~interest_lib.conf.load_config` with a
:class:`~interest_lib.conf.core.ConfigError` naming the key, the value and what is allowed.

Hyper-parameters of the models are limited by each model's own ``LIMITS`` (see
:mod:`interest_lib.conf.models`); backends and feeds are the names in :mod:`interest_lib.registry`.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING

from interest_lib.conf.core import ConfigError, Limit, check_limits
from interest_lib.registry import BACKENDS, FEEDS, SETTING_PARSERS, resolve

if TYPE_CHECKING:
    from interest_lib.conf.sections import Config

#: What score.migration / score.evolution may name besides an MLflow model URI.
SCORE_SOURCES = ("model", "popularity", "decayed_frequency", "markov", "persistence", "personal_frequency")
#: What score.migration may also name: an event-level model (interest_lib.scoring.event_models)
#: after EVENT_PREFIX.
EVENT_PREFIX = "event:"
EVENT_MODELS = ("learned_ranker", "tifu_knn", "personal_frequency", "popularity", "decayed_frequency", "markov")
#: What evaluate.targets may name: task -> (slices, metrics).
TARGET_METRICS = {"migration": (("all", "switch"), ("hr@1", "hr@5", "hr@10", "ndcg@10", "mrr")),
                  "evolution": (("all",), ("js", "stage_acc"))}

_SHARE = Limit(ge=0, le=1)
_POSITIVE = Limit(gt=0)
_DEVICE = Limit(choices=("auto", "cpu", "cuda"))
_MODEL = Limit(choices=lambda get: get("models").names())
_SCORE_SOURCE = Limit(choices=SCORE_SOURCES, or_else=(lambda v: ":/" in v, "an MLflow model URI such as runs:/..."))
#: score.migration may also name an event-level model (interest_lib.scoring.event_models).
_EVENT_SOURCES = tuple(EVENT_PREFIX + m for m in EVENT_MODELS)
_MIGRATION_SOURCE = Limit(choices=SCORE_SOURCES, or_else=(
    lambda v: ":/" in v or v in _EVENT_SOURCES,
    "an MLflow model URI such as runs:/..., or an event-level model: " + ", ".join(_EVENT_SOURCES)))

#: Every range and choice check of the configuration, by dotted key.
LIMITS: dict[str, Limit] = {
    "storage.warehouse": Limit(nonempty=True),
    "storage.engine": Limit(choices=("auto", "delta-spark", "delta-rs")),
    "storage.raw_dir": Limit(nonempty=True),
    "storage.lock_timeout_seconds": Limit(ge=0),
    "storage.vacuum_retention_hours": Limit(ge=0),
    "spark.shuffle_partitions": Limit(ge=1),
    "spark.arrow_batch_size": Limit(ge=1),
    "generate.users": _POSITIVE,
    "generate.mean_events_per_user": _POSITIVE,
    "generate.items_per_category": Limit(ge=1),
    "generate.days": _POSITIVE,
    "generate.dirt_rate": _SHARE,
    "generate.duplicate_rate": _SHARE,
    "generate.late_rate": _SHARE,
    "generate.format": Limit(choices=("jsonl", "csv")),
    "generate.partitions": Limit(ge=0),
    "ingest.format": Limit(choices=("auto", "jsonl", "csv", "parquet")),
    "ingest.max_future_skew_minutes": Limit(ge=0),
    "ingest.quarantine_rows_per_file": _POSITIVE,
    "sessionize.gap_minutes": _POSITIVE,
    "sessionize.max_session_minutes": _POSITIVE,
    "features.window_days": _POSITIVE,
    "features.step_days": Limit(ge=1, le="features.window_days"),
    "features.category_level": Limit(choices=(1, 2, 3)),
    "features.decay": Limit(ge=0, lt=1),
    "features.min_share": Limit(ge=0, lt=1),
    "features.top_k": _POSITIVE,
    "migration.js_threshold": _SHARE,
    "migration.min_events": Limit(ge=1),
    "migration.min_swing": _SHARE,
    "migration.min_group_size": Limit(ge=2, why="a smaller value publishes groups of a single user"),
    "migration.flow_level": Limit(choices=("auto",),
                                  or_else=(lambda v: str(v).strip().isdigit(),
                                           "a level 0, 1, 2, ... (0 = as detected, 1 = families / departments)")),
    "migration.flow_auto_coverage": _SHARE,
    "privacy.dp_epsilon": Limit(gt=0, lt=math.inf, or_else=(lambda v: v is None, "null: off")),
    "privacy.dp_max_cells_per_user": Limit(ge=1),
    "stages.lookback_windows": Limit(ge=1),
    "stages.active_share": _SHARE,
    "stages.trend_threshold": Limit(ge=0),
    "embeddings.batch_size": _POSITIVE,
    "embeddings.max_length": Limit(ge=1),
    "embeddings.device": _DEVICE,
    "sequences.max_events": _POSITIVE,
    "sequences.max_windows": _POSITIVE,
    "sequences.validation_days": Limit(ge=1),
    "sequences.test_days": Limit(ge=1),
    "train.migration_model": _MODEL,
    "train.evolution_model": _MODEL,
    "train.backend": Limit(choices=tuple(BACKENDS)),
    "train.feed": Limit(choices=tuple(FEEDS)),
    "train.num_processes": _POSITIVE,
    "train.use_gpu": _DEVICE,
    "train.epochs": _POSITIVE,
    "train.warm_start_epochs": _POSITIVE,
    "train.warm_start_lr_scale": Limit(gt=0, le=1),
    "train.batch_size": _POSITIVE,
    "train.learning_rate": _POSITIVE,
    "train.weight_decay": Limit(ge=0),
    "train.patience": Limit(ge=0),
    "train.min_delta": Limit(ge=0),
    "train.grad_clip_norm": Limit(ge=0),
    "train.lr_schedule": Limit(choices=("constant", "cosine")),
    "train.ema_decay": Limit(ge=0, lt=1),
    "train.shuffle_buffer": Limit(ge=1),
    "train.torch_threads": Limit(ge=0),
    "score.migration": _MIGRATION_SOURCE,
    "score.evolution": _SCORE_SOURCE,
    "score.top_k": _POSITIVE,
    "score.forecast_k": _POSITIVE,
    "score.batch_size": _POSITIVE,
    "score.device": _DEVICE,
    "score.recommendations": _POSITIVE,
    "score.explore_share": _SHARE,
    "score.cold_start_max_events": _POSITIVE,
    "score.cold_start_own_weight": Limit(ge=0),
    "score.cold_start_text_weight": Limit(ge=0),
    "score.cold_start_popularity_weight": Limit(ge=0),
    "score.cold_start_temperature": _POSITIVE,
    "score.cold_start_popularity_days": _POSITIVE,
    "score.event_refit_days": Limit(ge=0),
    "stream.source": Limit(choices=("files", "kafka")),
    "stream.max_files_per_trigger": Limit(ge=1),
    "stream.max_offsets_per_trigger": Limit(ge=1),
    "stream.kafka_starting_offsets": Limit(choices=("earliest", "latest")),
    "stream.trigger": Limit(choices=("processing_time", "available_now", "once")),
    "stream.trigger_seconds": Limit(ge=0),
    "stream.watermark_minutes": Limit(ge=0),
    "stream.query_name": Limit(nonempty=True),
    "stream.timeout_seconds": Limit(ge=0),
    "monitor.task": Limit(choices=tuple(TARGET_METRICS)),
    "monitor.weeks": Limit(ge=1),
    "report.dir": Limit(nonempty=True),
    "report.heatmap_level": Limit(ge=0),
    "report.lookup_users": Limit(ge=0, le=10000),
    "run.log_level": Limit(choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), ignore_case=True),
}


def validate(conf: Config) -> None:
    """Check every setting of ``conf`` (normalising the column mappings in place)."""
    check_limits(conf, LIMITS)
    conf.models.check()
    from interest_lib.schema import EVENT_TYPES, RAW_FIELDS, RAW_ITEM_FIELDS

    weights = conf.features.event_weights
    unknown, missing = set(weights) - set(EVENT_TYPES), set(EVENT_TYPES) - set(weights)
    if unknown or missing:
        raise ConfigError(f"features.event_weights: unknown types {sorted(unknown)}, missing {sorted(missing)}")
    conf.ingest.columns = _column_mapping(conf.ingest.columns, RAW_FIELDS, "ingest.columns")
    conf.ingest.item_columns = _column_mapping(conf.ingest.item_columns, RAW_ITEM_FIELDS, "ingest.item_columns")
    _check_date("ingest.min_event_date", conf.ingest.min_event_date)
    _check_date("generate.start_date", conf.generate.start_date, date_only=True)
    if conf.score.as_of:
        _check_date("score.as_of", conf.score.as_of)
    _check_targets(conf.evaluate.targets)
    for key in SETTING_PARSERS:  # an empty value means the owner's defaults: nothing to import
        if _setting(conf, key):
            parsed_setting(conf, key)
    m = conf.monitor
    slices, metrics = TARGET_METRICS[m.task]
    if m.slice not in slices:
        raise ConfigError(f"key 'monitor.slice' is {m.slice!r}: the {m.task} task has slices {', '.join(slices)}")
    if m.metric not in metrics:
        raise ConfigError(f"key 'monitor.metric' is {m.metric!r}: the {m.task} task has metrics {', '.join(metrics)}")


def parsed_setting(conf: Config, key: str):
    """The value of ``key`` (one of :data:`~interest_lib.registry.SETTING_PARSERS`) parsed by its
    owner's parser; a ConfigError naming the key, the value and what is wrong where it does not
    parse (also for a configuration changed after it was loaded)."""
    value = _setting(conf, key)
    try:
        return resolve(SETTING_PARSERS[key])(value)
    except ValueError as exc:
        raise ConfigError(f"key '{key}' is {value!r}: {exc}") from None


def _setting(conf: Config, key: str):
    section, _, name = key.partition(".")
    return getattr(getattr(conf, section), name)


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


def _check_targets(targets: dict) -> None:
    """``evaluate.targets``: task -> slice -> metric -> a finite number (the required gain)."""
    for task, slices in targets.items():
        if task not in TARGET_METRICS or not isinstance(slices, dict):
            raise ConfigError(f"evaluate.targets.{task}: expected one of {', '.join(TARGET_METRICS)} "
                              "holding slice -> metric -> gain")
        known_slices, known_metrics = TARGET_METRICS[task]
        for slice_, metrics in slices.items():
            if slice_ not in known_slices or not isinstance(metrics, dict):
                raise ConfigError(f"evaluate.targets.{task}.{slice_}: expected a slice ({', '.join(known_slices)}) "
                                  "holding metric -> gain")
            for metric, gain in metrics.items():
                if metric not in known_metrics:
                    raise ConfigError(f"evaluate.targets.{task}.{slice_}.{metric}: unknown metric; "
                                      f"allowed: {', '.join(known_metrics)}")
                if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not math.isfinite(gain):
                    raise ConfigError(f"key 'evaluate.targets.{task}.{slice_}.{metric}' is {gain!r}: "
                                      "expected a number (the relative gain, e.g. 0.1)")
