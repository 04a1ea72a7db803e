"""``interest ingest``: raw files -> bronze.events, bronze.events_quarantine and ref.items.

Accounting invariant, checked on every run and reported:
``rows in = accepted + quarantined + duplicates removed``. Duplicates are events whose
event_id appears earlier in the same input (the copy from the earliest file is kept) or is
already in bronze.events from an earlier batch.

Concurrency and restarts: a run holds the writer locks of its three tables from its first read
to its last commit, so the existing event ids it dedupes against and its batch number are never
stale. The batch number is the bronze.events version that commits it: the run reads version V,
writes batch V + 1 and pins its commit to V (``expected_version``), so a batch number is never
reused even by a writer that bypassed the lock (that commit fails instead). Each table commit
records the run id as a Delta app transaction, and a rerun checks each table: a run stopped
after its bronze.events commit completes ref.items (and its item quarantine rows) on rerun.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import asdict, dataclass
from typing import Optional

from pyspark.sql import DataFrame, SparkSession, Window, functions as F
from pyspark.storagelevel import StorageLevel

from interest_lib import schema as S
from interest_lib.conf import Config
from interest_lib.ingest.pseudonymise import pseudonymise_col, resolve_key
from interest_lib.ingest.readers import CORRUPT, list_local_files, raw_record, read_raw
from interest_lib.ingest.validate import to_events, with_parsed_fields, with_reason
from interest_lib.logs import StageTimer, get_logger
from interest_lib.storage import Tables, Txn
from interest_lib.storage.catalog import BRONZE_EVENTS, BRONZE_QUARANTINE, REF_ITEMS

log = get_logger(__name__)


class IngestAccountingError(RuntimeError):
    """rows in != accepted + quarantined + duplicates: a row was lost or invented."""


@dataclass
class IngestReport:
    """What one ingest run did."""

    run_id: str
    ingest_batch: int
    rows_in: int
    accepted: int
    quarantined: int
    duplicates_removed: int
    reasons: dict
    items_accepted: int
    items_quarantined: int
    skipped: bool = False

    def summary(self) -> str:
        """One human-readable line with the four counts."""
        return (f"rows in {self.rows_in:,} = accepted {self.accepted:,} + quarantined "
                f"{self.quarantined:,} + duplicates removed {self.duplicates_removed:,}")


def default_run_id(path: str) -> str:
    """A run id derived from the input files (names, sizes, mtimes): same files, same id."""
    if "://" in path:
        return "ingest-" + hashlib.sha1(path.encode()).hexdigest()[:16]
    entries = sorted(
        (f, os.path.getsize(f), int(os.path.getmtime(f))) for f in list_local_files(path)
        if os.path.isfile(f)
    )
    return "ingest-" + hashlib.sha1(repr(entries).encode()).hexdigest()[:16]


def dedupe_events(events: DataFrame, existing_ids: Optional[DataFrame]) -> DataFrame:
    """Keep one row per event_id (from the earliest source file), minus ids already stored."""
    order = Window.partitionBy(S.EVENT_ID).orderBy(S.SOURCE_FILE, S.EVENT_TIME, S.USER_ID, S.EVENT_TYPE)
    unique = events.withColumn("_n", F.row_number().over(order)).filter("_n = 1").drop("_n")
    if existing_ids is not None:
        unique = unique.join(existing_ids, S.EVENT_ID, "left_anti")
    return unique


def quarantine_rows(df: DataFrame, record_type: str, fields, batch: int, now: dt.datetime) -> DataFrame:
    """Rejected rows in the quarantine table's shape."""
    return df.select(
        F.lit(record_type).alias(S.RECORD_TYPE), raw_record(fields).alias(S.RAW_RECORD), S.REASON,
        S.SOURCE_FILE,
        F.lit(batch).cast("long").alias(S.INGEST_BATCH),
        F.lit(now).cast("timestamp").alias(S.INGESTED_AT),
    )


def _items_path(conf: Config) -> Optional[str]:
    """The raw catalogue path, None (with a warning) when there is no catalogue to ingest."""
    path = conf.ingest.items_input or os.path.join(conf.storage.raw_dir, "items")
    if "://" not in path and not list_local_files(path):
        log.warning("no item catalogue at %s; ref.items left as it is", path)
        return None
    return path


def _ingest_items(spark: SparkSession, conf: Config, tables: Tables, batch: int,
                  now: dt.datetime, txn: Txn) -> tuple[int, int]:
    path = _items_path(conf)
    if path is None:
        return 0, 0
    raw = read_raw(spark, path, S.RAW_ITEM_FIELDS, conf.ingest.format)
    price = F.trim(F.col(S.PRICE)).try_cast("double")
    reason = (
        F.when(F.col(CORRUPT).isNotNull(), "malformed_record")
        .when(F.col(S.ITEM_ID).isNull() | (F.trim(S.ITEM_ID) == ""), "missing_item_id")
        .when(F.col(S.CATEGORY_ID).isNull() | (F.trim(S.CATEGORY_ID) == ""), "missing_category")
        .when(F.col(S.CATEGORY_PATH).isNull(), "missing_category_path")
        .when(F.col(S.PRICE).isNotNull() & price.isNull(), "malformed_price")
    )
    checked = raw.withColumn(S.REASON, reason).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        bad = checked.filter(F.col(S.REASON).isNotNull())
        items = checked.filter(F.col(S.REASON).isNull()).select(
            F.trim(S.ITEM_ID).alias(S.ITEM_ID), S.TITLE, S.DESCRIPTION,
            F.trim(S.CATEGORY_ID).alias(S.CATEGORY_ID), S.CATEGORY_PATH, price.alias(S.PRICE),
        ).dropDuplicates([S.ITEM_ID])
        q = tables.write(quarantine_rows(bad, "item", S.RAW_ITEM_FIELDS, batch, now), BRONZE_QUARANTINE,
                         txn=Txn(txn.app_id + ":items"))
        tables.merge(items, REF_ITEMS, keys=[S.ITEM_ID], txn=txn)
        n_bad = q.rows_written if q.rows_written is not None else bad.count()
        return items.count(), n_bad if not q.skipped else 0
    finally:
        checked.unpersist()


def run_ingest(spark: SparkSession, conf: Config, tables: Tables,
               input_path: Optional[str] = None, now: Optional[dt.datetime] = None) -> IngestReport:
    """Ingest raw event files into bronze.events (+ quarantine) and the catalogue into ref.items.

    Args:
        spark: the session.
        conf: full configuration (``ingest`` section, ``storage.raw_dir``, ``run.run_id``).
        tables: table API.
        input_path: raw events path; default ``ingest.input`` or ``<raw_dir>/events``.
        now: ingest time (tests pin it); default the current UTC time.

    Returns:
        :class:`IngestReport`; raises :class:`IngestAccountingError` if rows went missing.
        Another ingest holding the tables' writer locks makes it wait (see the module docstring).
    """
    with tables.writer_lock(BRONZE_EVENTS, BRONZE_QUARANTINE, REF_ITEMS, job="ingest"):
        return _run_ingest(spark, conf, tables, input_path, now)


def _complete_items(spark: SparkSession, conf: Config, tables: Tables, run_id: str, txn: Txn,
                    now: dt.datetime) -> IngestReport:
    """A rerun of a run whose bronze.events commit exists: commit ref.items if it is missing."""
    batch = tables.committed_version(BRONZE_EVENTS, txn.app_id)
    batch = -1 if batch is None else batch
    if tables.txn_version(REF_ITEMS, txn.app_id) is not None or _items_path(conf) is None:
        log.warning("ingest run %s was already committed; nothing to do", run_id)
        return IngestReport(run_id, batch, 0, 0, 0, 0, {}, 0, 0, skipped=True)
    log.warning("ingest run %s: bronze.events holds its batch %d but ref.items does not (the run "
                "stopped between the commits): completing ref.items", run_id, batch)
    items_ok, items_bad = _ingest_items(spark, conf, tables, batch, now, txn)
    return IngestReport(run_id, batch, 0, 0, 0, 0, {}, items_ok, items_bad)


def _run_ingest(spark: SparkSession, conf: Config, tables: Tables, input_path: Optional[str],
                now: Optional[dt.datetime]) -> IngestReport:
    timer = StageTimer(log)
    path = input_path or conf.ingest.input or os.path.join(conf.storage.raw_dir, "events")
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).replace(tzinfo=None)
    run_id = conf.run.run_id or default_run_id(path)
    txn = Txn(f"ingest:{run_id}")
    key = resolve_key(conf.ingest)
    if tables.txn_version(BRONZE_EVENTS, txn.app_id) is not None:
        return _complete_items(spark, conf, tables, run_id, txn, now)
    base = tables.version_or_missing(BRONZE_EVENTS)  # -1: no bronze.events yet
    bronze_exists = base >= 0
    batch = base + 1  # == the version this run's bronze.events commit gets (pinned below)
    log.info("ingest run %s: batch %d from %s", run_id, batch, path)

    with timer.stage("read+validate") as counts:
        raw = read_raw(spark, path, S.RAW_FIELDS, conf.ingest.format)
        checked = (
            raw.transform(with_parsed_fields)
            .transform(lambda d: with_reason(d, now, conf.ingest.max_future_skew_minutes,
                                             conf.ingest.min_event_date))
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        reason_rows = checked.groupBy(S.REASON).count().collect()
        reasons = {r[S.REASON]: r["count"] for r in reason_rows if r[S.REASON] is not None}
        rows_in = sum(r["count"] for r in reason_rows)
        n_valid = rows_in - sum(reasons.values())
        counts.update(rows_in=rows_in, valid=n_valid, invalid=rows_in - n_valid)
    try:
        with timer.stage("quarantine") as counts:
            bad = quarantine_rows(checked.filter(F.col(S.REASON).isNotNull()), "event", S.RAW_FIELDS,
                                  batch, now)
            q = tables.write(bad, BRONZE_QUARANTINE, txn=txn)
            quarantined = q.rows_written if q.rows_written is not None else sum(reasons.values())
            counts.update(quarantined=quarantined)
        with timer.stage("dedupe+pseudonymise+write") as counts:
            events = checked.filter(F.col(S.REASON).isNull()).transform(to_events)
            existing = tables.read(BRONZE_EVENTS, version=base).select(S.EVENT_ID) if bronze_exists else None
            accepted_df = (
                dedupe_events(events, existing)
                .withColumn(S.USER_ID, pseudonymise_col(S.USER_ID, key))
                .withColumn(S.INGEST_BATCH, F.lit(batch).cast("long"))
                .withColumn(S.INGESTED_AT, F.lit(now).cast("timestamp"))
                .select(*S.EVENT_SCHEMA.fieldNames())
            )
            w = tables.write(accepted_df, BRONZE_EVENTS, partition_by=[S.EVENT_DATE], txn=txn,
                             expected_version=base)
            accepted = w.rows_written if w.rows_written is not None else (
                tables.read(BRONZE_EVENTS).filter(F.col(S.INGEST_BATCH) == batch).count()
            )
            counts.update(accepted=accepted, duplicates_removed=n_valid - accepted)
    finally:
        checked.unpersist()
    with timer.stage("items") as counts:
        items_ok, items_bad = _ingest_items(spark, conf, tables, batch, now, txn)
        counts.update(items=items_ok, items_quarantined=items_bad)

    report = IngestReport(run_id, batch, rows_in, accepted, quarantined, n_valid - accepted,
                          reasons, items_ok, items_bad)
    if report.rows_in != report.accepted + report.quarantined + report.duplicates_removed \
            or report.quarantined != sum(reasons.values()):
        raise IngestAccountingError(f"ingest accounting broken: {report.summary()}; {asdict(report)}")
    log.info("ingest: %s", report.summary())
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        log.info("  quarantined %-22s %s", reason, f"{n:,}")
    return report
