"""Table names, defined once, and where each table lives under the warehouse.

A table name is ``<layer>.<table>``; its folder is ``<warehouse>/<layer>/<table>``. Each table
declares its contract (:data:`CONTRACTS`: columns and types, partitioning, keys), which every write
is checked against.
"""

from __future__ import annotations

import os

from interest_lib.storage.contracts import TableContract

BRONZE_EVENTS = "bronze.events"
BRONZE_QUARANTINE = "bronze.events_quarantine"
REF_ITEMS = "ref.items"
REF_PLANTED_MIGRATIONS = "ref.planted_migrations"
SILVER_SESSIONS = "silver.sessions"
SILVER_EVENTS_SESSIONIZED = "silver.events_sessionized"
SILVER_USER_INTEREST_WINDOWS = "silver.user_interest_windows"
SILVER_INTEREST_MIGRATIONS = "silver.interest_migrations"
SILVER_INTEREST_STAGES = "silver.interest_stages"
REF_VOCAB = "ref.vocab"
GOLD_MIGRATION_FLOWS = "gold.migration_flows"
GOLD_TRAINING_SEQUENCES = "gold.training_sequences"
REF_ITEM_EMBEDDINGS = "ref.item_embeddings"
REF_TEXT_EMBEDDINGS = "ref.text_embeddings"
GOLD_MODEL_METRICS = "gold.model_metrics"
GOLD_USER_INTEREST_SCORES = "gold.user_interest_scores"
GOLD_RECOMMENDATIONS = "gold.recommendations"
GOLD_MIGRATION_ALERTS = "gold.migration_alerts"
GOLD_STREAM_PROGRESS = "gold.stream_progress"

#: Every table the jobs write, with a one-line description (the README's catalogue).
TABLES = {
    BRONZE_EVENTS: "cleaned, typed, deduplicated, pseudonymised events (partitioned by event_date)",
    BRONZE_QUARANTINE: "every rejected raw record with the reason it was rejected",
    REF_ITEMS: "item catalogue: title, description, category id and path, price",
    REF_PLANTED_MIGRATIONS: "generator ground truth: every planted interest migration",
    SILVER_SESSIONS: "one row per session with its features (partitioned by session_date)",
    SILVER_EVENTS_SESSIONIZED: "bronze events with their session_id (partitioned by event_date)",
    SILVER_USER_INTEREST_WINDOWS: "per user and window: sparse raw and decayed interest shares, top categories, entropy, activity",
    SILVER_INTEREST_MIGRATIONS: "detected interest migrations: user, window, from -> to, divergence, magnitude, kind",
    SILVER_INTEREST_STAGES: "per user, window and followed category: share, trend, persistence, stage",
    REF_VOCAB: "integer ids of categories, items, event types and texts used by the models (0 = padding)",
    GOLD_MIGRATION_FLOWS: "per window, from -> to category counts of migrating users (small cells suppressed)",
    GOLD_TRAINING_SEQUENCES: "fixed-length model inputs and labels per user and cut-off, split by time",
    REF_ITEM_EMBEDDINGS: "one sentence vector per item (title + description), keyed by item_id",
    REF_TEXT_EMBEDDINGS: "one sentence vector per distinct event text (search, review), keyed by text_hash",
    GOLD_USER_INTEREST_SCORES: "per user and as-of date: top next categories, P(switch), next-window forecast and its stage, current interests with stages, model versions, scoring_path (window: the models on the user's windows | cold_start: a user without a complete window)",
    GOLD_RECOMMENDATIONS: "per user and as-of date: ranked categories, each marked exploit (current / forecast interest) or explore (likely migration)",
    GOLD_MIGRATION_ALERTS: "per user, window and new top interest: a migration already visible on the current, partial window (interest stream), with when it was first seen",
    GOLD_MODEL_METRICS: "per evaluation: every baseline's and model's test metrics (HR, NDCG, MRR, JS, stage accuracy) with user-clustered bootstrap 95% CIs; plus drift rows (series = drift): the served model and the best baseline on each latest complete week, appended by every scoring run",
    GOLD_STREAM_PROGRESS: "per streaming micro-batch: input rows, rows/s, batch duration, landing -> scores latency (interest stream)",
}



# --- contracts: columns (Spark simple types), partitioning, keys (storage/contracts.py) ----------
_EVENT_COUNTS = tuple((f"n_{t}", "bigint") for t in
                      ("view", "click", "search", "favourite", "cart", "purchase", "review"))
_EVENT = (("event_id", "string"), ("user_id", "string"), ("item_id", "string"),
          ("category_id", "string"), ("category_path", "string"), ("event_type", "string"),
          ("event_time", "timestamp"), ("event_date", "date"), ("text", "string"), ("price", "double"),
          ("source", "string"), ("ingest_batch", "bigint"), ("ingested_at", "timestamp"))
_EMBEDDING = (("model", "string"), ("dim", "int"), ("embedding", "array<float>"),
              ("embedded_at", "timestamp"))

#: Every table's contract: each write on either engine is checked against it
#: (:func:`~interest_lib.storage.contracts.check_columns`); gold schemas are built from it.
CONTRACTS: dict[str, TableContract] = {
    BRONZE_EVENTS: TableContract(_EVENT, partition_by=("event_date",), keys=("event_id",)),
    BRONZE_QUARANTINE: TableContract((
        ("record_type", "string"), ("raw_record", "string"), ("reason", "string"),
        ("source_file", "string"), ("ingest_batch", "bigint"), ("ingested_at", "timestamp"))),
    REF_ITEMS: TableContract((
        ("item_id", "string"), ("title", "string"), ("description", "string"),
        ("category_id", "string"), ("category_path", "string"), ("price", "double")), keys=("item_id",)),
    REF_PLANTED_MIGRATIONS: TableContract((
        ("raw_user_id", "string"), ("migration_time", "timestamp"), ("from_category", "string"),
        ("to_category", "string"), ("kind", "string"))),
    SILVER_SESSIONS: TableContract((
        ("session_id", "string"), ("user_id", "string"), ("session_start", "timestamp"),
        ("session_end", "timestamp"), ("session_date", "date"), ("duration_s", "bigint"),
        ("n_events", "bigint"), *_EVENT_COUNTS, ("categories_visited", "array<string>"),
        ("dominant_category", "string"), ("has_purchase", "boolean")),
        partition_by=("session_date",), keys=("session_id",)),
    SILVER_EVENTS_SESSIONIZED: TableContract((*_EVENT, ("session_id", "string")),
                                             partition_by=("event_date",), keys=("event_id",)),
    SILVER_USER_INTEREST_WINDOWS: TableContract((
        ("user_id", "string"), ("window", "bigint"), ("window_start", "timestamp"),
        ("window_end", "timestamp"), ("n_events", "bigint"), ("n_sessions", "bigint"), *_EVENT_COUNTS,
        ("windows_since_prev", "bigint"), ("window_categories", "array<string>"),
        ("window_shares", "array<double>"), ("profile_categories", "array<string>"),
        ("profile_shares", "array<double>"), ("top_categories", "array<string>"), ("entropy", "double"),
        ("text_vector", "array<float>")), keys=("user_id", "window")),
    SILVER_INTEREST_MIGRATIONS: TableContract((
        ("user_id", "string"), ("window", "bigint"), ("window_start", "timestamp"),
        ("confirmed_window", "bigint"), ("from_category", "string"), ("to_category", "string"),
        ("from_categories", "array<string>"), ("to_categories", "array<string>"),
        ("divergence", "double"), ("magnitude", "double"), ("kind", "string")), keys=("user_id", "window")),
    SILVER_INTEREST_STAGES: TableContract((
        ("user_id", "string"), ("window", "bigint"), ("window_start", "timestamp"), ("interest", "string"),
        ("share", "double"), ("trend", "double"), ("persistence", "double"), ("age", "bigint"),
        ("stage", "string")), keys=("user_id", "window", "interest")),
    REF_VOCAB: TableContract((("kind", "string"), ("key", "string"), ("idx", "int")), keys=("kind", "key")),
    GOLD_MIGRATION_FLOWS: TableContract((
        ("window", "bigint"), ("window_start", "timestamp"), ("from_category", "string"),
        ("to_category", "string"), ("users", "bigint"), ("dp_epsilon", "double"), ("dp_delta", "double")),
        keys=("window", "from_category", "to_category")),
    GOLD_TRAINING_SEQUENCES: TableContract((
        ("user_id", "string"), ("window", "bigint"), ("cutoff", "timestamp"), ("split", "string"),
        ("ev_category", "array<int>"), ("ev_item", "array<int>"), ("ev_type", "array<int>"),
        ("ev_interval", "array<int>"), ("ev_text", "array<int>"), ("win_category", "array<int>"),
        ("win_share", "array<double>"), ("next_category", "int"), ("is_switch", "boolean"),
        ("next_dist_category", "array<int>"), ("next_dist_share", "array<double>"), ("next_stage", "int")),
        partition_by=("split",), keys=("user_id", "window")),
    REF_ITEM_EMBEDDINGS: TableContract((("item_id", "string"), ("text_hash", "string"), *_EMBEDDING),
                                       keys=("item_id",)),
    REF_TEXT_EMBEDDINGS: TableContract((("text_hash", "string"), ("text", "string"), *_EMBEDDING),
                                       keys=("text_hash",)),
    GOLD_MODEL_METRICS: TableContract((
        ("evaluation_id", "string"), ("model", "string"), ("kind", "string"), ("task", "string"),
        ("slice", "string"), ("metric", "string"), ("value", "double"), ("rows", "bigint"),
        ("run_id", "string"), ("table_version", "bigint"), ("evaluated_at", "timestamp"),
        # added later (schema evolution: older tables gain them on the next write, their rows read null)
        ("ci_low", "double"), ("ci_high", "double"),  # user-clustered bootstrap 95% CI of value
        ("series", "string"),  # test (interest evaluate) | drift (a scoring run's latest complete week)
        ("week_start", "timestamp")),  # drift rows: start of the predicted week (the samples' cut-off)
        keys=("evaluation_id", "model", "task", "slice", "metric"),
        added=("ci_low", "ci_high", "series", "week_start")),
    GOLD_USER_INTEREST_SCORES: TableContract((
        ("user_id", "string"), ("as_of", "timestamp"), ("window", "bigint"),
        ("next_categories", "array<string>"), ("next_probs", "array<float>"), ("p_switch", "float"),
        ("forecast_categories", "array<string>"), ("forecast_shares", "array<float>"),
        ("forecast_stage", "string"),
        ("current_interests", "array<struct<category:string,share:double,stage:string>>"),
        ("explanation", "string"), ("migration_model", "string"), ("migration_version", "string"),
        ("evolution_model", "string"), ("evolution_version", "string"),
        ("training_table_version", "bigint"), ("score_run_id", "string"), ("scored_at", "timestamp"),
        ("as_of_date", "date"),
        # added later (schema evolution): window (the models) | cold_start (scoring/cold_start.py)
        ("scoring_path", "string")),
        partition_by=("as_of_date",), keys=("user_id", "as_of_date"), added=("scoring_path",)),
    GOLD_RECOMMENDATIONS: TableContract((
        ("user_id", "string"), ("as_of", "timestamp"), ("rank", "int"), ("category", "string"),
        ("score", "float"), ("reason", "string"), ("explanation", "string"), ("score_run_id", "string"),
        ("as_of_date", "date")), partition_by=("as_of_date",), keys=("user_id", "as_of_date", "rank")),
    GOLD_MIGRATION_ALERTS: TableContract((
        ("user_id", "string"), ("window", "bigint"), ("window_start", "timestamp"),
        ("from_category", "string"), ("to_category", "string"), ("divergence", "double"),
        ("magnitude", "double"), ("window_events", "bigint"), ("first_seen", "timestamp"),
        ("stream_batch", "bigint")), keys=("user_id", "window", "to_category")),
    GOLD_STREAM_PROGRESS: TableContract((
        ("query", "string"), ("batch_id", "bigint"), ("input_rows", "bigint"),
        ("input_rows_per_s", "double"), ("processed_rows_per_s", "double"), ("batch_seconds", "double"),
        ("latency_s", "double"),  # oldest landed file of the batch -> its scores committed (file source)
        ("accepted", "bigint"), ("scored_users", "bigint"), ("recorded_at", "timestamp")),
        keys=("query", "batch_id")),
}
assert set(CONTRACTS) == set(TABLES), "every catalog table declares its contract"


def contract(name: str) -> "TableContract | None":
    """The contract of table ``name``; None for a table outside the catalog (tests' own tables)."""
    return CONTRACTS.get(name)


def table_path(warehouse: str, name: str) -> str:
    """Folder (or URI) of table ``name`` (``layer.table``) under ``warehouse``."""
    if name.count(".") != 1:
        raise ValueError(f"table name {name!r} must be '<layer>.<table>'")
    layer, table = name.split(".")
    if "://" in warehouse or warehouse.startswith("dbfs:"):
        return f"{warehouse.rstrip('/')}/{layer}/{table}"
    return os.path.join(os.path.abspath(warehouse), layer, table)


def check_warehouse(warehouse: str) -> None:
    """Refuse a local ``storage.warehouse`` that is a file or cannot be written, before a job
    computes anything: creates the folder when missing and writes (then removes) a probe file.
    URIs (``s3://``, ``dbfs:``...) are left to the engine.

    Raises:
        InputError: naming the setting, the path and the reason.
    """
    from interest_lib.errors import InputError

    if "://" in warehouse or warehouse.startswith("dbfs:"):
        return
    path = os.path.abspath(warehouse)
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"storage.warehouse {warehouse!r} ({path}) is a file, not a folder: "
                         "point storage.warehouse at a folder")
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-probe-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise InputError(f"storage.warehouse {warehouse!r} ({path}) cannot be written: "
                         f"{exc.strerror or exc}") from None
