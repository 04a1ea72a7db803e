"""``interest ingest``: raw files -> bronze.events, bronze.events_quarantine and ref.items.

Accounting invariant, checked on every run and reported:
``rows in = accepted + quarantined + duplicates removed``, each term counted on its own (rows
read and reasons by one aggregation, accepted and quarantined as the rows the commits wrote,
duplicates as the rows the dedupe flagged), so a row lost in a write breaks the identity instead
of being booked as a duplicate. Duplicates are events whose event_id appears earlier in the same
input (the copy from the earliest file is kept) or is already in bronze.events. They are flagged
before the daily cap counts events (:mod:`.dedupe`), so re-sent copies never use up a user-day's
allowance.

Run id: ``ingest-<hash>`` of the input files (names, sizes, modification times) and of the
settings that change what ingest writes (:func:`output_settings`). A rerun with the same files
and settings is a no-op; a rerun after changing a setting (e.g. ``ingest.min_event_date``) is a
new batch: rows it now accepts are added, rows already in bronze.events (same event_id) are
counted as duplicates and not added again, its quarantined rows are recorded under the new
batch (earlier batches' quarantine rows stay), and nothing already in bronze.events is deleted.

A run that finds no valid record (everything quarantined, or no records at all) stops with
:class:`NothingAcceptedError` naming the top quarantine reasons, after recording the quarantine.

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
import hmac
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Optional

from pyspark.sql import DataFrame, Observation, SparkSession, functions as F
from pyspark.storagelevel import StorageLevel

from interest_lib import schema as S
from interest_lib.conf import Config, IngestConf
from interest_lib.errors import InputError
from interest_lib.pseudonymise import pseudonymise_col, resolve_key
from interest_lib.ingest.caps import (
    OVER_CAP, cap_user_days, heavy_items_report, heavy_user_days, heavy_users_report, stored_user_days,
)
from interest_lib.ingest.dedupe import DUPLICATE, flag_duplicates
from interest_lib.ingest.quarantine import quarantine_record
from interest_lib.ingest.readers import CORRUPT, RawInput, read_raw, scan_input
from interest_lib.ingest.validate import REASONS, invalid_utf8, to_events, with_parsed_fields, with_reason
from interest_lib.logs import StageTimer, get_logger
from interest_lib.storage import Tables, Txn
from interest_lib.storage.catalog import BRONZE_EVENTS, BRONZE_QUARANTINE, REF_ITEMS

log = get_logger(__name__)


class IngestAccountingError(RuntimeError):
    """rows in != accepted + quarantined + duplicates: a row was lost or invented."""


class NothingAcceptedError(InputError):
    """No record of the input is valid: every one was quarantined (or there were none)."""


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
    heavy_users: list = field(default_factory=list)
    """Users over ``ingest.max_events_per_user_day`` (pseudonymised id, days over the cap, events
    on those days, events quarantined), most quarantined first."""
    heavy_items: list = field(default_factory=list)
    """Items holding at least ``ingest.heavy_item_share`` of the events ingest keeps (valid,
    within the cap, not duplicates): id, events, share."""

    def skew_lines(self) -> list[str]:
        """One line per heavy user (a bot?) and per heavy item, for logs and the CLI."""
        return ([f"heavy user {u[S.USER_ID]}: {u['events_on_those_days']:,} events on {u['days_over_cap']} "
                 f"day(s) over the daily cap, {u['quarantined']:,} quarantined ({OVER_CAP})"
                 for u in self.heavy_users]
                + [f"heavy item {i[S.ITEM_ID]}: {i['events']:,} kept events ({i['share']:.1%})"
                   for i in self.heavy_items])

    def summary(self) -> str:
        """One human-readable line with the four counts."""
        return (f"rows in {self.rows_in:,} = accepted {self.accepted:,} + quarantined "
                f"{self.quarantined:,} + duplicates removed {self.duplicates_removed:,}")


def output_settings(conf: IngestConf, key: bytes) -> dict:
    """The ingest settings that change what a run writes (part of the default run id). The
    pseudonymisation key enters only as an HMAC fingerprint."""
    return {
        "format": conf.format, "columns": dict(sorted(conf.columns.items())),
        "item_columns": dict(sorted(conf.item_columns.items())), "csv_header": conf.csv_header,
        "max_future_skew_minutes": conf.max_future_skew_minutes,
        "min_event_date": conf.min_event_date,
        "max_events_per_user_day": conf.max_events_per_user_day,
        "key": hmac.new(key, b"interest-ingest-run-id", hashlib.sha256).hexdigest()[:16],
    }


def default_run_id(inputs: list[Optional[RawInput]], settings: dict) -> str:
    """``ingest-<hash>`` of the input files (paths, sizes, mtimes) and the output settings:
    the same files and settings give the same id, a changed setting a new one."""
    files = [(i.format, [(f.path, f.size, f.mtime) for f in i.files]) if i else None for i in inputs]
    text = json.dumps({"files": files, "settings": settings}, sort_keys=True)
    return "ingest-" + hashlib.sha1(text.encode()).hexdigest()[:16]


def _stored_on_batch_days(tables: Tables, base: int, checked: DataFrame) -> Optional[DataFrame]:
    """bronze.events' stored events per user-day (version ``base``) on the days of ``checked``'s
    valid records, for the daily cap to count (None: no bronze.events yet, or no valid record).
    A day's events arrive over several runs (hourly files, a stream)."""
    if base < 0:
        return None
    days = [r[0] for r in checked.filter(F.col(S.REASON).isNull()).select(F.to_date("_ts")).distinct().collect()]
    if not days:
        return None
    return stored_user_days(tables.read(BRONZE_EVENTS, version=base), days=days)


def check_records(raw: DataFrame, now: dt.datetime, conf: IngestConf,
                  watermark: Optional[dt.datetime] = None) -> DataFrame:
    """Raw records with typed ``_ts`` / ``_price`` and ``reason`` (the first failed check, null
    for a valid event): the one validation batch ingest and ``interest stream`` share.
    ``watermark`` (streaming only): valid events before it are ``late_event``."""
    return raw.transform(with_parsed_fields).transform(
        lambda d: with_reason(d, now, conf.max_future_skew_minutes, conf.min_event_date, watermark))


def bronze_rows(flagged: DataFrame, key: bytes, batch: int, now: dt.datetime) -> DataFrame:
    """The rows of ``flagged`` (valid events of :func:`flag_duplicates`' output, through
    :func:`~.validate.to_events`) that go to bronze.events: not
    duplicates, user ids pseudonymised, stamped with the ingest batch and time, in the table's
    column order (batch ingest and ``interest stream`` alike)."""
    return (
        flagged.filter(~F.col(DUPLICATE))
        .withColumn(S.USER_ID, pseudonymise_col(S.USER_ID, key))
        .withColumn(S.INGEST_BATCH, F.lit(batch).cast("long"))
        .withColumn(S.INGESTED_AT, F.lit(now).cast("timestamp"))
        .select(*S.EVENT_SCHEMA.fieldNames())
    )


def top_reasons(reasons: dict, n: int = 3) -> str:
    """The ``n`` most frequent quarantine reasons with counts and meanings, for messages."""
    top = sorted(reasons.items(), key=lambda kv: -kv[1])[:n]
    return "; ".join(f"{r} {c:,} ({REASONS.get(r, r)})" for r, c in top)


def quarantine_rows(df: DataFrame, record_type: str, fields, batch: int, now: dt.datetime,
                    key: Optional[bytes] = None) -> DataFrame:
    """Rejected rows in the quarantine table's shape; with ``key``, user ids are pseudonymised
    inside raw_record (:func:`~interest_lib.ingest.quarantine.quarantine_record`)."""
    return df.select(
        F.lit(record_type).alias(S.RECORD_TYPE), quarantine_record(fields, key).alias(S.RAW_RECORD), S.REASON,
        S.SOURCE_FILE,
        F.lit(batch).cast("long").alias(S.INGEST_BATCH),
        F.lit(now).cast("timestamp").alias(S.INGESTED_AT),
    )


def _read_items(spark: SparkSession, conf: Config, items_in: Optional[RawInput]) -> Optional[DataFrame]:
    """The raw catalogue (read before any commit, so that a header that does not fit stops the run
    before bronze.events is written), or None when there is none."""
    if items_in is None:
        log.warning("no item catalogue at %s; ref.items left as it is", _items_path(conf))
        return None
    return read_raw(spark, items_in, S.RAW_ITEM_FIELDS, columns=conf.ingest.item_columns,
                    required=S.REQUIRED_RAW_ITEM_FIELDS, csv_header=conf.ingest.csv_header)


def _items_path(conf: Config) -> str:
    return conf.ingest.items_input or os.path.join(conf.storage.raw_dir, "items")


def _ingest_items(raw: Optional[DataFrame], tables: Tables, batch: int, now: dt.datetime,
                  txn: Txn, rows_per_file: int) -> tuple[int, int]:
    if raw is None:
        return 0, 0
    price = F.trim(F.col(S.PRICE)).try_cast("double")
    reason = (
        F.when(invalid_utf8(S.RAW_ITEM_FIELDS), "invalid_utf8")
        .when(F.col(CORRUPT).isNotNull(), "malformed_record")
        .when(F.col(S.ITEM_ID).isNull() | (F.trim(S.ITEM_ID) == ""), "missing_item_id")
        .when(F.col(S.CATEGORY_ID).isNull() | (F.trim(S.CATEGORY_ID) == ""), "missing_category")
        .when(F.col(S.CATEGORY_PATH).isNull(), "missing_category_path")
        .when(F.col(S.PRICE).isNotNull() & price.isNull(), "malformed_price")
    )
    checked = raw.withColumn(S.REASON, reason).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        bad = checked.filter(F.col(S.REASON).isNotNull())
        n_bad = bad.count()  # of the persisted rows: sizes the quarantine's files
        items = checked.filter(F.col(S.REASON).isNull()).select(
            F.trim(S.ITEM_ID).alias(S.ITEM_ID), S.TITLE, S.DESCRIPTION,
            F.trim(S.CATEGORY_ID).alias(S.CATEGORY_ID), S.CATEGORY_PATH, price.alias(S.PRICE),
        ).dropDuplicates([S.ITEM_ID])
        n_bad, skipped = write_quarantine(tables, quarantine_rows(bad, "item", S.RAW_ITEM_FIELDS, batch, now),
                                          n_bad, rows_per_file, Txn(txn.app_id + ":items"))
        tables.merge(items, REF_ITEMS, keys=[S.ITEM_ID], txn=txn)
        return items.count(), n_bad if not skipped else 0
    finally:
        checked.unpersist()


def write_quarantine(tables: Tables, rows: DataFrame, n_rows: int, rows_per_file: int,
                     txn: Txn) -> tuple[int, bool]:
    """Append quarantine ``rows`` (``n_rows`` of them) to bronze.events_quarantine as
    ceil(n_rows / rows_per_file) files of equal size, whatever the partitioning they were computed
    in; returns (rows written, skipped: ``txn`` had committed them already)."""
    q = tables.write(rows.repartition(max(1, -(-n_rows // rows_per_file))), BRONZE_QUARANTINE, txn=txn)
    return (q.rows_written if q.rows_written is not None else n_rows), q.skipped


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
        :class:`IngestReport`. Raises :class:`~interest_lib.ingest.readers.RawInputError` when
        the input cannot be read (naming the file and columns), :class:`NothingAcceptedError` when
        no record is valid, :class:`IngestAccountingError` if rows went missing.
        Another ingest holding the tables' writer locks makes it wait (see the module docstring).
    """
    with tables.writer_lock(BRONZE_EVENTS, BRONZE_QUARANTINE, REF_ITEMS, job="ingest"):
        return _run_ingest(spark, conf, tables, input_path, now)


def _complete_items(spark: SparkSession, conf: Config, tables: Tables, run_id: str, txn: Txn,
                    now: dt.datetime, items_in: Optional[RawInput]) -> IngestReport:
    """A rerun of a run whose bronze.events commit exists: commit ref.items if it is missing."""
    batch = tables.committed_version(BRONZE_EVENTS, txn.app_id)
    batch = -1 if batch is None else batch
    if tables.txn_version(REF_ITEMS, txn.app_id) is not None or items_in is None:
        log.warning("ingest run %s was already committed; nothing to do (the same input files and "
                    "settings; change a setting or pass another --run-id to ingest again)", run_id)
        return IngestReport(run_id, batch, 0, 0, 0, 0, {}, 0, 0, skipped=True)
    log.warning("ingest run %s: bronze.events holds its batch %d but ref.items does not (the run "
                "stopped between the commits): completing ref.items", run_id, batch)
    items_ok, items_bad = _ingest_items(_read_items(spark, conf, items_in), tables, batch, now, txn,
                                        conf.ingest.quarantine_rows_per_file)
    return IngestReport(run_id, batch, 0, 0, 0, 0, {}, items_ok, items_bad)


def _run_ingest(spark: SparkSession, conf: Config, tables: Tables, input_path: Optional[str],
                now: Optional[dt.datetime]) -> IngestReport:
    timer = StageTimer(log)
    path = input_path or conf.ingest.input or os.path.join(conf.storage.raw_dir, "events")
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).replace(tzinfo=None)
    key = resolve_key(conf, spark.conf.get("spark.master", ""))
    events_in = scan_input(spark, path, conf.ingest.format)
    items_in = scan_input(spark, _items_path(conf), conf.ingest.format, missing_ok=True)
    run_id = conf.run.run_id or default_run_id([events_in, items_in], output_settings(conf.ingest, key))
    txn = Txn(f"ingest:{run_id}")
    if tables.txn_version(BRONZE_EVENTS, txn.app_id) is not None:
        return _complete_items(spark, conf, tables, run_id, txn, now, items_in)
    base = tables.version_or_missing(BRONZE_EVENTS)  # -1: no bronze.events yet
    bronze_exists = base >= 0
    batch = base + 1  # == the version this run's bronze.events commit gets (pinned below)
    log.info("ingest run %s: batch %d from %s (%d %s files)", run_id, batch, path,
             len(events_in.files), events_in.format)

    with timer.stage("read+validate") as counts:
        raw = read_raw(spark, events_in, S.RAW_FIELDS, columns=conf.ingest.columns,
                       required=S.REQUIRED_RAW_FIELDS, csv_header=conf.ingest.csv_header)
        items_raw = _read_items(spark, conf, items_in)
        existing = tables.read(BRONZE_EVENTS, version=base).select(S.EVENT_ID) if bronze_exists else None
        base_checked = flag_duplicates(check_records(raw, now, conf.ingest), existing).persist(
            StorageLevel.MEMORY_AND_DISK)
        cap = conf.ingest.max_events_per_user_day
        heavy = heavy_user_days(base_checked, cap, _stored_on_batch_days(tables, base, base_checked),
                                key).persist() if cap > 0 else None
        checked = cap_user_days(base_checked, cap, heavy)
        reason_rows = checked.groupBy(S.REASON, DUPLICATE).count().collect()
        reasons: dict[str, int] = {}
        for r in reason_rows:
            if r[S.REASON] is not None:
                reasons[r[S.REASON]] = reasons.get(r[S.REASON], 0) + r["count"]
        rows_in = sum(r["count"] for r in reason_rows)
        n_valid = rows_in - sum(reasons.values())
        n_kept = sum(r["count"] for r in reason_rows if r[S.REASON] is None and not r[DUPLICATE])
        counts.update(rows_in=rows_in, valid=n_valid, invalid=rows_in - n_valid)
    with timer.stage("skew report") as counts:
        heavy_users = (heavy_users_report(heavy, conf.ingest.report_heavy, key)
                       if heavy is not None and reasons.get(OVER_CAP) else [])
        heavy_items = heavy_items_report(checked, conf.ingest.heavy_item_share, conf.ingest.report_heavy, n_kept)
        counts.update(heavy_users=len(heavy_users), heavy_items=len(heavy_items))
    try:
        if rows_in == 0:
            raise NothingAcceptedError(f"{path}: the {len(events_in.files)} input file(s) hold no records")
        with timer.stage("quarantine") as counts:
            bad = quarantine_rows(checked.filter(F.col(S.REASON).isNotNull()), "event", S.RAW_FIELDS,
                                  batch, now, key)
            quarantined, _ = write_quarantine(tables, bad, sum(reasons.values()),
                                              conf.ingest.quarantine_rows_per_file, txn)
            counts.update(quarantined=quarantined)
        if n_valid == 0:
            raise NothingAcceptedError(
                f"{path}: none of the {rows_in:,} records is valid; all were quarantined to "
                f"{BRONZE_QUARANTINE} (ingest batch {batch}). Top reasons: {top_reasons(reasons)}. "
                "Check the input's columns (ingest.columns) and the ingest.* settings")
        with timer.stage("dedupe+pseudonymise+write") as counts:
            seen = Observation("ingest_dedupe")
            valid_rows = checked.filter(F.col(S.REASON).isNull()).transform(to_events, keep=(DUPLICATE,))
            flagged = valid_rows.observe(
                seen, F.count(F.lit(1)).alias("valid"),
                F.coalesce(F.sum(F.col(DUPLICATE).cast("long")), F.lit(0)).alias("duplicates"))
            accepted_df = bronze_rows(flagged, key, batch, now)
            w = tables.write(accepted_df, BRONZE_EVENTS, partition_by=[S.EVENT_DATE], txn=txn,
                             expected_version=base)
            accepted = w.rows_written if w.rows_written is not None else (
                tables.read(BRONZE_EVENTS).filter(F.col(S.INGEST_BATCH) == batch).count()
            )
            if w.skipped:  # nothing ran the observed plan: count the flags directly
                seen_valid, duplicates = n_valid, flagged.filter(F.col(DUPLICATE)).count()
            else:
                seen_valid, duplicates = seen.get["valid"], seen.get["duplicates"]
            counts.update(accepted=accepted, duplicates_removed=duplicates)
    finally:
        base_checked.unpersist()
        if heavy is not None:
            heavy.unpersist()
    with timer.stage("items") as counts:
        items_ok, items_bad = _ingest_items(items_raw, tables, batch, now, txn, conf.ingest.quarantine_rows_per_file)
        counts.update(items=items_ok, items_quarantined=items_bad)

    report = IngestReport(run_id, batch, rows_in, accepted, quarantined, duplicates,
                          reasons, items_ok, items_bad, heavy_users=heavy_users, heavy_items=heavy_items)
    if report.rows_in != report.accepted + report.quarantined + report.duplicates_removed \
            or report.quarantined != sum(reasons.values()) or seen_valid != n_valid:
        raise IngestAccountingError(f"ingest accounting broken: {report.summary()}; valid rows "
                                    f"{n_valid:,} counted, {seen_valid:,} deduplicated; {asdict(report)}")
    log.info("ingest: %s", report.summary())
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        log.info("  quarantined %-22s %s", reason, f"{n:,}")
    for line in report.skew_lines():
        log.warning("ingest: %s", line)
    return report
