"""Table names, defined once, and where each table lives under the warehouse.

A table name is ``<layer>.<table>``; its folder is ``<warehouse>/<layer>/<table>``.
"""

from __future__ import annotations

import os

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
    GOLD_USER_INTEREST_SCORES: "per user and as-of date: top next categories, P(switch), next-window forecast and its stage, current interests with stages, model versions",
    GOLD_RECOMMENDATIONS: "per user and as-of date: ranked categories, each marked exploit (current / forecast interest) or explore (likely migration)",
    GOLD_MODEL_METRICS: "per evaluation: every baseline's and model's test metrics (HR, NDCG, MRR, JS, stage accuracy)",
}


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
