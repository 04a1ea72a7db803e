"""The ``foreachBatch`` function of ``interest stream``: one micro-batch of raw records through
the batch pipeline's own code, idempotently.

1. **Ingest** (:mod:`interest_lib.ingest`'s functions, not a copy): validation and quarantine
   reasons (:func:`check_records`), the user-id redaction of quarantined records
   (:func:`quarantine_rows`), dedupe (:func:`flag_duplicates`), pseudonymisation and stamps
   (:func:`bronze_rows`), and the daily cap per user (:func:`cap_user_days`, counting the
   user-day's events already in bronze.events: micro-batches split a day; duplicates are
   flagged first and not counted). One more reason
   exists only here: ``late_event``, an event older than the **watermark** = the latest event
   time in bronze.events (before this micro-batch) minus ``stream.watermark_minutes``. Dedupe
   by event_id covers the micro-batch and the bronze.events partitions from the watermark's
   date on (an accepted event is never older than the
   watermark, so its stored copy is there). Accounting is checked as in batch ingest:
   ``rows in = accepted + quarantined + duplicates removed``.
2. **Idempotent commits**: bronze.events_quarantine and bronze.events are written with the Delta
   app transaction (app id ``stream:<query_name>``, version = the micro-batch id), quarantine
   first. A micro-batch replayed after a crash (Spark replays the last one whose commit it did
   not record, with the same files or offsets) finds its commits and appends nothing twice.
   The bronze commit is pinned to the version read (``expected_version``), whose successor is
   the micro-batch's ``ingest_batch``, as in batch ingest.
3. **Downstream, recomputed per touched user** (safe to repeat): incremental sessionize
   (:func:`run_sessionize`: new bronze batches, the affected users' sessions), the touched
   users' interest profiles in their windows from the first touched one on
   (:func:`build_profiles` on their events, MERGE into silver.user_interest_windows by user and
   window: the rows featurize would compute), migration alerts on the partial window
   (:mod:`.alerts`, gold.migration_alerts), and scores (:func:`score_inputs` with predictors
   loaded once per query and once per Python worker, MERGE into gold.user_interest_scores by
   user and as-of date). The as-of time is the stream's event-time clock: the latest event
   time in bronze.events.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import unquote, urlparse

from pyspark.sql import DataFrame, SparkSession, functions as F
from pyspark.storagelevel import StorageLevel

from interest_lib import schema as S
from interest_lib.conf import Config
from interest_lib.features.job import text_vector_builder
from interest_lib.features.profiles import PROFILE_COLUMNS, build_profiles
from interest_lib.features.sequences import build_scoring_inputs
from interest_lib.features.windows import WINDOW, window_index_col
from interest_lib.ingest.caps import cap_user_days, stored_user_days
from interest_lib.ingest.dedupe import DUPLICATE, flag_duplicates
from interest_lib.ingest.job import IngestAccountingError, bronze_rows, check_records, quarantine_rows, write_quarantine
from interest_lib.ingest.validate import to_events
from interest_lib.logs import get_logger
from interest_lib.sessions import run_sessionize
from interest_lib.storage import Tables, Txn
from interest_lib.storage.catalog import (
    BRONZE_EVENTS, BRONZE_QUARANTINE, GOLD_MIGRATION_ALERTS, GOLD_TRAINING_SEQUENCES,
    GOLD_USER_INTEREST_SCORES, REF_VOCAB, SILVER_EVENTS_SESSIONIZED, SILVER_USER_INTEREST_WINDOWS,
)
from interest_lib.streaming.alerts import ALERT_KEYS, new_alerts, partial_window_alerts

log = get_logger(__name__)


@dataclass
class BatchReport:
    """What one micro-batch did (also what the bench reads)."""

    batch_id: int
    ingest_batch: int = -1
    rows_in: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates_removed: int = 0
    reasons: dict = field(default_factory=dict)
    skipped: bool = False
    """bronze.events already held this micro-batch (a replay after a crash): nothing appended."""
    users_touched: int = 0
    alerts: int = 0
    scored_users: Optional[int] = None
    watermark: Optional[str] = None
    seconds: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    """source file -> its modification time (epoch seconds; file source only)."""
    started_at: float = 0.0
    finished_at: float = 0.0

    def summary(self) -> str:
        """One log line."""
        state = " (replayed: already committed)" if self.skipped else ""
        return (f"micro-batch {self.batch_id} -> ingest batch {self.ingest_batch}{state}: rows in "
                f"{self.rows_in:,} = accepted {self.accepted:,} + quarantined {self.quarantined:,} + "
                f"duplicates removed {self.duplicates_removed:,}; {self.users_touched:,} users touched, "
                f"{self.alerts} new alerts, {self.scored_users if self.scored_users is not None else 'no'} "
                f"users rescored; {self.finished_at - self.started_at:.1f} s "
                f"({', '.join(f'{k} {v:.1f}' for k, v in self.seconds.items())})")


def _mtime(uri: str) -> Optional[float]:
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        return None
    try:
        return os.path.getmtime(unquote(parsed.path))
    except OSError:
        return None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class MicroBatchProcessor:
    """``foreachBatch`` callable: ``query.foreachBatch(MicroBatchProcessor(...))``.

    Args:
        spark: the session.
        conf: full configuration (``ingest``, ``stream``, ``features``, ``migration``, ``score``).
        tables: table API (either engine).
        key: the pseudonymisation key.
        scorer: (broadcast of the predictors, category keys) or None (``stream.score`` off).
    """

    def __init__(self, spark: SparkSession, conf: Config, tables: Tables, key: bytes, scorer=None):
        self.spark, self.conf, self.tables, self.key, self.scorer = spark, conf, tables, key, scorer
        self.app_id = f"stream:{conf.stream.query_name}"
        self.reports: list[BatchReport] = []
        self._clock: Optional[tuple[int, Optional[dt.datetime]]] = None  # (bronze version, max event time)

    # --- the event-time clock ------------------------------------------------------------
    def latest_event_time(self, version: int) -> Optional[dt.datetime]:
        """Max event_time of bronze.events at ``version`` (cached for the version this query
        last committed, so a scan happens only after another writer's commit or a restart)."""
        if version < 0:
            return None
        if self._clock is None or self._clock[0] != version:
            latest = self.tables.read(BRONZE_EVENTS, version=version).agg(F.max(S.EVENT_TIME)).first()[0]
            self._clock = (version, latest)
        return self._clock[1]

    def watermark(self, version: int) -> Optional[dt.datetime]:
        """Events before this are late (None: bronze.events is empty or missing)."""
        latest = self.latest_event_time(version)
        return None if latest is None else latest - dt.timedelta(minutes=self.conf.stream.watermark_minutes)

    # --- one micro-batch -----------------------------------------------------------------
    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        report = BatchReport(batch_id, started_at=time.time())
        t = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal t
            now = time.perf_counter()
            report.seconds[name] = now - t
            t = now

        users = self._ingest(batch, batch_id, report)
        lap("ingest")
        if users is not None:
            try:
                self._downstream(users, batch_id, report, lap)
            finally:
                users.unpersist()
        report.finished_at = time.time()
        self.reports.append(report)
        log.info("stream %s", report.summary())

    def _ingest(self, batch: DataFrame, batch_id: int, report: BatchReport) -> Optional[DataFrame]:
        """Steps 1-2 of the module doc; returns the touched users (persisted) or None."""
        tables, conf, now = self.tables, self.conf, _now()
        txn = Txn(self.app_id, batch_id)
        with tables.writer_lock(BRONZE_EVENTS, BRONZE_QUARANTINE, job="stream"):
            base = tables.version_or_missing(BRONZE_EVENTS)
            done = tables.txn_version(BRONZE_EVENTS, self.app_id)
            report.skipped = done is not None and done >= batch_id
            if report.skipped:  # the watermark this micro-batch was computed with: before its commit
                committed = tables.committed_version(BRONZE_EVENTS, self.app_id)
                base = committed - 1 if committed is not None else base
            watermark = self.watermark(base)
            report.watermark = None if watermark is None else str(watermark)
            report.ingest_batch = ingest_batch = base + 1
            # Dedupe by event_id covers the micro-batch and bronze.events from the watermark's
            # date on (valid events are never older), flagged before the cap counts events.
            existing = None
            if base >= 0:
                existing = tables.read(BRONZE_EVENTS, version=base).select(S.EVENT_ID, S.EVENT_DATE)
                if watermark is not None:
                    existing = existing.filter(F.col(S.EVENT_DATE) >= F.lit(watermark.date()))
            base_checked = flag_duplicates(check_records(batch, now, conf.ingest, watermark), existing).persist(
                StorageLevel.MEMORY_AND_DISK)
            # The daily cap, counting what each user-day already has in bronze.events: a stream
            # splits a bot's day over many micro-batches (earliest kept, the rest quarantined as
            # user_day_over_cap). Valid events are never older than the watermark's date.
            cap = conf.ingest.max_events_per_user_day
            stored = (stored_user_days(tables.read(BRONZE_EVENTS, version=base), watermark.date())
                      if cap > 0 and watermark is not None else None)
            checked = cap_user_days(base_checked, cap, stored=stored, key=self.key)
            try:
                counts = checked.groupBy(S.REASON).count().collect()
                report.rows_in = sum(r["count"] for r in counts)
                report.reasons = {r[S.REASON]: r["count"] for r in counts if r[S.REASON] is not None}
                if report.rows_in == 0:
                    return None
                if conf.stream.source == "files":
                    report.files = {r[0]: _mtime(r[0]) for r in checked.select(S.SOURCE_FILE).distinct().collect()}
                bad = quarantine_rows(checked.filter(F.col(S.REASON).isNotNull()), "event", S.RAW_FIELDS,
                                      ingest_batch, now, self.key)
                report.quarantined, _ = write_quarantine(tables, bad, sum(report.reasons.values()),
                                                         conf.ingest.quarantine_rows_per_file, txn)
                flagged = (checked.filter(F.col(S.REASON).isNull()).transform(to_events, keep=(DUPLICATE,))
                           .persist(StorageLevel.MEMORY_AND_DISK))
                try:
                    n_valid, dups, latest = flagged.agg(
                        F.count(F.lit(1)), F.coalesce(F.sum(F.col(DUPLICATE).cast("long")), F.lit(0)),
                        F.max(F.when(~F.col(DUPLICATE), F.col(S.EVENT_TIME)))).first()
                    report.duplicates_removed = dups
                    if n_valid == 0:
                        self._check_accounting(report)
                        return None
                    w = tables.write(bronze_rows(flagged, self.key, ingest_batch, now), BRONZE_EVENTS,
                                     partition_by=[S.EVENT_DATE], txn=txn,
                                     expected_version=None if report.skipped else base)
                    if w.skipped:
                        report.skipped = True
                        report.accepted = n_valid - dups
                    else:
                        report.accepted = w.rows_written if w.rows_written is not None else n_valid - dups
                        previous = self.latest_event_time(base) if base >= 0 else None
                        newest = max(x for x in (previous, latest) if x is not None) if (previous or latest) else None
                        self._clock = (w.version, newest)
                    users = (bronze_rows(flagged.withColumn(DUPLICATE, F.lit(False)), self.key, ingest_batch, now)
                             .groupBy(S.USER_ID).agg(F.min(S.EVENT_TIME).alias("_first"))
                             .persist(StorageLevel.MEMORY_AND_DISK))
                    report.users_touched = users.count()
                finally:
                    flagged.unpersist()
            finally:
                base_checked.unpersist()
        try:
            self._check_accounting(report)
        except IngestAccountingError:
            users.unpersist()
            raise
        return users

    @staticmethod
    def _check_accounting(report: BatchReport) -> None:
        """rows in = accepted + quarantined + duplicates removed, as batch ingest checks it."""
        if report.rows_in != report.accepted + report.quarantined + report.duplicates_removed \
                or report.quarantined != sum(report.reasons.values()):
            raise IngestAccountingError(f"stream accounting broken: {report.summary()}")

    def _downstream(self, users: DataFrame, batch_id: int, report: BatchReport, lap) -> None:
        """Step 3 of the module doc for the touched ``users`` (user_id, _first event time)."""
        tables, conf = self.tables, self.conf
        run_sessionize(self.spark, conf, tables)
        lap("sessionize")
        f = conf.features
        per_event = -(-f.window_days // f.step_days)
        events = tables.read(SILVER_EVENTS_SESSIONIZED).join(F.broadcast(users.select(S.USER_ID)), S.USER_ID)
        from_window = users.select(S.USER_ID, (window_index_col("_first", f.step_days) - (per_event - 1)).alias("_from"))
        with tables.writer_lock(SILVER_USER_INTEREST_WINDOWS, GOLD_MIGRATION_ALERTS, GOLD_USER_INTEREST_SCORES,
                                job="stream"):
            profiles = build_profiles(events, f, text_vector_builder(tables, conf)).persist(StorageLevel.MEMORY_AND_DISK)
            try:
                changed = (profiles.join(F.broadcast(from_window), S.USER_ID)
                           .filter(F.col(WINDOW) >= F.col("_from")).select(*PROFILE_COLUMNS))
                tables.merge(changed, SILVER_USER_INTEREST_WINDOWS, keys=[S.USER_ID, WINDOW],
                             expected_version=tables.version_or_missing(SILVER_USER_INTEREST_WINDOWS))
                lap("profiles")
                existing = tables.read(GOLD_MIGRATION_ALERTS) if tables.exists(GOLD_MIGRATION_ALERTS) else None
                base = tables.version_or_missing(GOLD_MIGRATION_ALERTS)
                alerts = new_alerts(partial_window_alerts(profiles, conf), existing, _now(), batch_id)
                alerts = alerts.persist(StorageLevel.MEMORY_AND_DISK)
                report.alerts = alerts.count()
                if report.alerts:
                    tables.write(alerts, GOLD_MIGRATION_ALERTS, expected_version=base)
                alerts.unpersist()
                lap("alerts")
            finally:
                profiles.unpersist()
            if self.scorer is not None:
                report.scored_users = self._score(events, users, batch_id)
                lap("score")

    def _score(self, events: DataFrame, users: DataFrame, batch_id: int) -> int:
        from interest_lib.scoring.job import score_inputs, score_rows, score_stamps

        tables, conf = self.tables, self.conf
        broadcast, keys, (migration, evolution) = self.scorer
        latest = self.latest_event_time(tables.version(BRONZE_EVENTS))
        as_of = latest + dt.timedelta(microseconds=1)  # the newest event is part of the history
        profiles = tables.read(SILVER_USER_INTEREST_WINDOWS).join(F.broadcast(users.select(S.USER_ID)), S.USER_ID)
        inputs = build_scoring_inputs(events, profiles, tables.read(REF_VOCAB), conf, as_of)
        scored = score_inputs(inputs, broadcast, keys, conf).localCheckpoint()
        n = scored.count()
        if n:
            rows = score_rows(tables, scored, conf, migration, evolution,
                              score_stamps(as_of, f"{self.app_id}:{batch_id}"))
            tables.merge(rows, GOLD_USER_INTEREST_SCORES, keys=[S.USER_ID, "as_of_date"],
                         partition_by=["as_of_date"],
                         expected_version=tables.version_or_missing(GOLD_USER_INTEREST_SCORES))
        return n


def scoring_prerequisites(tables: Tables) -> list[str]:
    """Tables ``stream.score`` needs that do not exist yet."""
    return [t for t in (REF_VOCAB, GOLD_TRAINING_SEQUENCES, SILVER_USER_INTEREST_WINDOWS) if not tables.exists(t)]


__all__ = ["BatchReport", "MicroBatchProcessor", "scoring_prerequisites", "ALERT_KEYS"]
