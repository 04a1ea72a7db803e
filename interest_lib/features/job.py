"""``interest featurize``: silver events -> interest windows, migrations, stages, embeddings,
migration flows and training sequences.

Every output is recomputed from silver and replaces the previous version in one commit per
table (Delta keeps the old versions for time travel). A rerun on the same inputs (table versions,
settings, code: :mod:`interest_lib.storage.resume`) keeps the tables that input's earlier run
committed: after a kill it resumes at the first table not yet committed. Data problems are counted, not fatal:
users with a single event, windows too thin to compare, events whose category or item is not in
the catalogue, and empty or very long texts are all reported in :class:`FeaturizeReport`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from pyspark.sql import Column, DataFrame, SparkSession, functions as F
from pyspark.storagelevel import StorageLevel

from interest_lib import schema as S
from interest_lib.conf import Config, ConfigError
from interest_lib.errors import EmptyInputError
from interest_lib.features.detection_quality import DetectionQuality
from interest_lib.features.migrations import (
    choose_flow_level, detect_migrations, evaluate_detection, migration_flows,
    one_path_per_category, parse_flow_level,
)
from interest_lib.features.profiles import build_profiles
from interest_lib.features.sequences import build_sequences, build_vocab, split_bounds
from interest_lib.features.stages import STAGE, interest_stages
from interest_lib.features.windows import WINDOW, window_index_col
from interest_lib.pseudonymise import pseudonymise_col, resolve_key
from interest_lib.logs import StageTimer, get_logger
from interest_lib.privacy import dp_settings
from interest_lib.storage import Tables
from interest_lib.storage.resume import Resume
from interest_lib.storage.catalog import (
    GOLD_MIGRATION_FLOWS, GOLD_TRAINING_SEQUENCES, REF_ITEM_EMBEDDINGS, REF_ITEMS,
    REF_PLANTED_MIGRATIONS, REF_TEXT_EMBEDDINGS, REF_VOCAB,
    SILVER_EVENTS_SESSIONIZED, SILVER_INTEREST_MIGRATIONS, SILVER_INTEREST_STAGES,
    SILVER_USER_INTEREST_WINDOWS,
)

log = get_logger(__name__)


@dataclass
class FeaturizeReport:
    """Counts of what featurize wrote and of the data problems it handled."""

    events: int = 0
    users: int = 0
    windows: int = 0
    migrations: int = 0
    flow_cells: int = 0
    flow_level: int = 0
    """Hierarchy level of gold.migration_flows (``migration.flow_level``, or the level auto chose)."""
    stage_rows: int = 0
    sequences_written: bool = True
    """False when gold.training_sequences already held the same rows (no new version)."""
    sequences: dict = field(default_factory=dict)
    problems: dict = field(default_factory=dict)
    embeddings: dict = field(default_factory=dict)
    detection: Optional[DetectionQuality] = None


def input_summary(events: DataFrame, items: Optional[DataFrame], text_limit: int) -> dict:
    """One pass over ``events``: ``events``, ``users``, ``last_event`` (the latest event time) and
    the counts of the input problems featurize handles explicitly (none of them is dropped):
    ``users_with_one_event``, ``empty_texts`` (a search or review without text), ``long_texts``
    (longer than ``text_limit`` characters), and with ``items`` ``events_item_not_in_catalogue``
    (events with an item id the catalogue lacks) and ``events_category_not_in_catalogue``
    (events whose category no catalogue item has).

    One query (per-user counts, then their sums) instead of one per count: each count used to be
    a scan of the events of its own.
    """
    flagged = events
    if items is not None:
        # distinct keys: a join must not multiply events
        flagged = (flagged
                   .join(items.select(S.ITEM_ID).distinct().withColumn("_item_known", F.lit(1)), S.ITEM_ID, "left")
                   .join(items.select(S.CATEGORY_ID).distinct().withColumn("_category_known", F.lit(1)),
                         S.CATEGORY_ID, "left"))

    def flag(condition: Column) -> Column:
        return F.sum(F.when(condition, 1).otherwise(0))

    sums = {
        "empty_texts": flag(F.col(S.EVENT_TYPE).isin("search", "review")
                            & (F.col(S.TEXT).isNull() | (F.trim(S.TEXT) == ""))),
        "long_texts": flag(F.length(S.TEXT) > text_limit),
    }
    if items is not None:
        sums["events_item_not_in_catalogue"] = flag(F.col(S.ITEM_ID).isNotNull() & F.col("_item_known").isNull())
        sums["events_category_not_in_catalogue"] = flag(F.col("_category_known").isNull())
    per_user = flagged.groupBy(S.USER_ID).agg(F.count(F.lit(1)).alias("_n"), F.max(S.EVENT_TIME).alias("_last"),
                                              *[v.alias(k) for k, v in sums.items()])
    row = per_user.agg(F.sum("_n").alias("events"), F.count(F.lit(1)).alias("users"),
                       F.max("_last").alias("last_event"), flag(F.col("_n") == 1).alias("users_with_one_event"),
                       *[F.sum(k).alias(k) for k in sums]).first().asDict()
    return {k: (v if k == "last_event" else int(v or 0)) for k, v in row.items()}


def planted_windows(tables: Tables, conf: Config) -> Optional[DataFrame]:
    """The generator's planted migrations with pseudonymised user ids and window indices."""
    if not tables.exists(REF_PLANTED_MIGRATIONS):
        return None
    key = resolve_key(conf, tables.spark.conf.get("spark.master", ""))
    return (
        tables.read(REF_PLANTED_MIGRATIONS)
        .withColumn(S.USER_ID, pseudonymise_col("raw_user_id", key))
        .withColumn(WINDOW, window_index_col("migration_time", conf.features.step_days))
    )


def text_vector_builder(tables: Tables, conf: Config):
    """The window text-vector builder when embeddings exist, else None."""
    if not (tables.exists(REF_ITEM_EMBEDDINGS) and tables.exists(REF_TEXT_EMBEDDINGS)):
        return None
    from interest_lib.features.text_profile import window_text_vectors

    items, texts = tables.read(REF_ITEM_EMBEDDINGS), tables.read(REF_TEXT_EMBEDDINGS)
    return lambda ev: window_text_vectors(ev, items, texts, conf.embeddings)


def content_fingerprint(df: DataFrame) -> tuple:
    """Order-independent digest of ``df``'s rows: (rows, sum of xxhash64, sum of murmur3 hashes
    of each row's columns taken in name order); equal for equal multisets of rows."""
    cols = sorted(df.columns)
    wide = "decimal(38,0)"  # sums of 64-bit hashes overflow a long
    return tuple(df.agg(F.count(F.lit(1)), F.sum(F.xxhash64(*cols).cast(wide)),
                        F.sum(F.hash(*cols).cast(wide))).first())


def write_if_changed(tables: Tables, df: DataFrame, name: str, **write_args) -> bool:
    """Overwrite table ``name`` with ``df`` unless it already holds exactly these rows (same
    column types and :func:`content_fingerprint`); True when a new version was written."""
    if tables.exists(name):
        current = tables.read(name)
        if sorted(current.dtypes) == sorted(df.dtypes):
            df = df.persist(StorageLevel.MEMORY_AND_DISK)
            try:
                if content_fingerprint(current) == content_fingerprint(df):
                    log.info("%s: unchanged (same rows as version %d), not rewritten", name, tables.version(name))
                    return False
                tables.write(df, name, mode="overwrite", **write_args)
                return True
            finally:
                df.unpersist()
    tables.write(df, name, mode="overwrite", **write_args)
    return True


def flow_level(migrations: DataFrame, paths: DataFrame, conf: Config, private: bool) -> tuple[int, dict]:
    """gold.migration_flows' level and, for ``auto``, the coverage of each level tried.

    Raises:
        ConfigError: ``auto`` with differential privacy on (the choice reads exact counts, which
            the privacy budget does not cover).
    """
    try:
        level = parse_flow_level(conf.migration.flow_level)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if level is not None:
        return level, {}
    if private:
        raise ConfigError("migration.flow_level=auto chooses the level from exact counts, which "
                          "privacy.dp_epsilon does not cover: set a fixed level (e.g. 1) with DP on")
    level, coverage = choose_flow_level(migrations, paths, conf.migration.min_group_size,
                                        conf.migration.flow_auto_coverage)
    log.info("migration flows: level %d chosen (share of migrations in published cells per level: %s)",
             level, ", ".join(f"{lv}: {v:.1%}" for lv, v in coverage.items()))
    return level, coverage


def featurize_inputs(tables: Tables, conf: Config) -> dict:
    """What featurize's outputs depend on: the versions of the tables it reads and its settings
    (the key of :class:`~interest_lib.storage.resume.Resume`; run ids, Spark and storage settings
    are not inputs)."""
    versions = {name: tables.version_or_missing(name) for name in (
        SILVER_EVENTS_SESSIONIZED, REF_ITEMS, REF_ITEM_EMBEDDINGS, REF_TEXT_EMBEDDINGS)}
    settings = {section: dataclasses.asdict(getattr(conf, section)) for section in (
        "features", "migration", "privacy", "stages", "sequences", "embeddings")}
    return {"tables": versions, "settings": settings}


def _kept(tables: Tables, resume: Resume, name: str, counts: dict) -> bool:
    """True when a rerun keeps ``name`` as the same inputs' earlier run committed it (logged)."""
    if not resume.done(name):
        return False
    log.info("%s: kept, version %d already holds this input's output (resumed run)", name, tables.version(name))
    counts.setdefault("resumed", []).append(name)
    return True


def _overwrite_unless_kept(tables: Tables, resume: Resume, name: str, counts: dict, build) -> int:
    """Rows of ``name`` after this run: kept as the same inputs committed it (:func:`_kept`), else
    ``build()`` overwrites it under the run's app transaction."""
    if _kept(tables, resume, name, counts):
        return tables.read(name).count()
    return tables.rows_after_overwrite(tables.write(build(), name, mode="overwrite", txn=resume.txn(name)))


def run_featurize(spark: SparkSession, conf: Config, tables: Tables, embed: bool = True) -> FeaturizeReport:
    """Build every featurize table from silver.events_sessionized (see the module docstring).

    A rerun on the same inputs (table versions, settings, code) keeps the tables the earlier run
    already committed and builds only the rest: after a kill it resumes where it stopped, and a
    rerun after success rewrites nothing.
    """
    timer = StageTimer(log)
    report = FeaturizeReport()
    events = tables.read(SILVER_EVENTS_SESSIONIZED).persist(StorageLevel.MEMORY_AND_DISK)
    items = tables.read(REF_ITEMS) if tables.exists(REF_ITEMS) else None
    profiles = None
    try:
        with timer.stage("checks") as c:
            from interest_lib.features.embeddings import text_char_limit

            summary = input_summary(events, items, text_char_limit(conf.embeddings))
            report.events, report.users, last_event = (summary.pop(k) for k in ("events", "users", "last_event"))
            if report.events == 0:
                raise EmptyInputError(f"{SILVER_EVENTS_SESSIONIZED} holds no events: nothing to "
                                      "featurize (run ingest and sessionize on data first)")
            report.problems = summary
            c.update(events=report.events, users=report.users, **report.problems)
        if embed and items is not None:
            from interest_lib.features.embeddings import run_item_embeddings, run_text_embeddings

            with timer.stage("embeddings") as c:
                report.embeddings = {"items": run_item_embeddings(spark, conf, tables),
                                     "texts": run_text_embeddings(spark, conf, tables)}
                c.update(items_embedded=report.embeddings["items"].get("items_embedded", 0),
                         texts_embedded=report.embeddings["texts"].get("texts_embedded", 0))
        resume = Resume.for_inputs(tables, "featurize", featurize_inputs(tables, conf))
        with timer.stage("profiles") as c:
            report.windows = _overwrite_unless_kept(
                tables, resume, SILVER_USER_INTEREST_WINDOWS, c,
                lambda: build_profiles(events, conf.features, text_vector_builder(tables, conf)))
            profiles = tables.read(SILVER_USER_INTEREST_WINDOWS).persist(StorageLevel.MEMORY_AND_DISK)
            c.update(windows=report.windows)
        with timer.stage("migrations") as c:
            report.migrations = _overwrite_unless_kept(
                tables, resume, SILVER_INTEREST_MIGRATIONS, c,
                lambda: detect_migrations(profiles, conf.migration, conf.stages.active_share))
            migrations = tables.read(SILVER_INTEREST_MIGRATIONS)
            dp = dp_settings(conf.privacy.dp_epsilon, conf.privacy.dp_max_cells_per_user)
            paths = one_path_per_category(events).cache()
            report.flow_level, coverage = flow_level(migrations, paths, conf, dp is not None)
            # a kept table is not redrawn: new noise on the same counts would spend the DP budget again
            report.flow_cells = _overwrite_unless_kept(
                tables, resume, GOLD_MIGRATION_FLOWS, c,
                lambda: migration_flows(migrations, conf.migration.min_group_size, paths, report.flow_level, dp))
            paths.unpersist()
            planted = planted_windows(tables, conf)
            if planted is not None:
                report.detection = evaluate_detection(migrations, planted)
                log.info("migration detection vs planted truth: %s", report.detection.summary())
            c.update(migrations=report.migrations, flow_cells=report.flow_cells, flow_level=report.flow_level,
                     **{f"flow_coverage_level_{lv}": round(v, 3) for lv, v in coverage.items()},
                     flows_dp_epsilon=dp.epsilon if dp else "off (exact counts)")
        with timer.stage("stages") as c:
            report.stage_rows = _overwrite_unless_kept(
                tables, resume, SILVER_INTEREST_STAGES, c, lambda: interest_stages(profiles, conf.stages))
            stages = tables.read(SILVER_INTEREST_STAGES)
            c.update(stage_rows=report.stage_rows,
                     **{f"stage_{r[STAGE]}": r["count"] for r in stages.groupBy(STAGE).count().collect()})
        with timer.stage("sequences") as c:
            if not _kept(tables, resume, REF_VOCAB, c):
                tables.write(build_vocab(events, conf.features.category_level), REF_VOCAB, mode="overwrite",
                             txn=resume.txn(REF_VOCAB))
            vocab = tables.read(REF_VOCAB)
            val_start, test_start = split_bounds(last_event, conf.features.step_days, conf.sequences.validation_days,
                                               conf.sequences.test_days)
            if _kept(tables, resume, GOLD_TRAINING_SEQUENCES, c):
                report.sequences_written = False
            else:
                seqs = build_sequences(events, profiles, stages, vocab, conf, val_start, test_start)
                # An identical new version would make train and evaluate see new inputs and run
                # again (a second copy of gold.model_metrics): rewritten only when it changed.
                report.sequences_written = write_if_changed(tables, seqs, GOLD_TRAINING_SEQUENCES,
                                                            partition_by=["split"],
                                                            txn=resume.txn(GOLD_TRAINING_SEQUENCES))
            counts = {r["split"]: r["count"] for r in tables.read(GOLD_TRAINING_SEQUENCES).groupBy("split").count().collect()}
            report.sequences = {**counts, "validation_start": str(val_start), "test_start": str(test_start)}
            c.update(**{k: v for k, v in counts.items()})
    finally:
        events.unpersist()
        if profiles is not None:
            profiles.unpersist()
    return report
