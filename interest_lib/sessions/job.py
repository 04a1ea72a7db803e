"""``interest sessionize``: bronze.events -> silver.sessions and silver.events_sessionized.

Incremental by ingest batch: the batches already sessionized are those present in
silver.events_sessionized. For the users with new events, sessions are recomputed from the
latest stored session start at or before their earliest new event (exact, because the session
rule is causal; see :mod:`interest_lib.sessions.sessionize`), so a session spanning midnight or
a late arrival merges correctly with what is stored.

Events first, then sessions. The events are sessionized once and committed; a full run then
aggregates the sessions from the committed events (a narrow column read instead of a second
sort of every wide event row). Each sessions commit records, as the Delta app transaction
``sessionize:events``, the version of silver.events_sessionized it was built from; a run that
finds the two out of step (a run stopped between the commits) first rebuilds the sessions from
the stored events, so nothing is lost or counted twice.

Concurrent runs: a run holds the writer locks of both silver tables from its first read to its
last commit (a second run waits, then finds the batches done), and an incremental run's merges
are pinned to the silver versions it read, so a run that somehow interleaved (no lock, e.g. the
lock disabled) fails with :class:`~interest_lib.storage.ConcurrentWriteError` instead of
merging a stale result: never duplicate session or event ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession, functions as F
from pyspark.storagelevel import StorageLevel

from interest_lib import schema as S
from interest_lib.conf import Config
from interest_lib.errors import EmptyInputError
from interest_lib.logs import StageTimer, get_logger
from interest_lib.sessions.sessionize import assign_sessions, session_features
from interest_lib.storage import Tables, Txn
from interest_lib.storage.catalog import (
    BRONZE_EVENTS, BRONZE_QUARANTINE, SILVER_EVENTS_SESSIONIZED, SILVER_SESSIONS,
)

log = get_logger(__name__)
_DELETE = "_delete"
_CUT = "_recompute_from"
_STORED_SESSION = "_stored_session_id"
#: App transaction on silver.sessions: its version is the events version the sessions match.
SESSIONS_TXN = "sessionize:events"


@dataclass
class SessionizeReport:
    """What one sessionize run did."""

    mode: str  # full | incremental | up-to-date
    new_events: int
    events_written: int
    sessions_written: int
    sessions_deleted: int
    last_batch: int
    sessions_rebuilt: bool = False  # silver.sessions was out of step and rebuilt first

    def summary(self) -> str:
        """One line for the CLI and the pipeline report."""
        text = (f"({self.mode}): {self.new_events:,} new events, {self.sessions_written:,} sessions "
                f"written, {self.sessions_deleted:,} replaced")
        if self.sessions_rebuilt:
            text += ("; silver.sessions first rebuilt from the stored events (a previous run "
                     "stopped between its two commits)")
        return text


def _sessionize(events: DataFrame, conf: Config) -> DataFrame:
    return assign_sessions(events, conf.sessionize.gap_minutes, conf.sessionize.max_session_minutes)


def _sessionized_events(df: DataFrame) -> DataFrame:
    return df.select(*S.SESSIONIZED_EVENT_SCHEMA.fieldNames())


def write_sessions_from_events(tables: Tables, events_version: int):
    """Overwrite silver.sessions with the sessions of silver.events_sessionized at
    ``events_version``, recording that version (see the module docstring)."""
    events = tables.read(SILVER_EVENTS_SESSIONIZED, version=events_version)
    return tables.write(session_features(events), SILVER_SESSIONS, mode="overwrite",
                        partition_by=[S.SESSION_DATE], txn=Txn(SESSIONS_TXN, events_version))


def run_full(conf: Config, tables: Tables) -> SessionizeReport:
    """Sessionize all of bronze.events and overwrite both silver tables."""
    bronze = tables.read(BRONZE_EVENTS)
    n_bronze, last = bronze.agg(F.count(F.lit(1)), F.max(S.INGEST_BATCH)).first()
    if n_bronze == 0:
        raise EmptyInputError(f"{BRONZE_EVENTS} holds no events: nothing to sessionize (did "
                              f"ingest accept anything? see {BRONZE_QUARANTINE})")
    e = tables.write(_sessionized_events(_sessionize(bronze, conf)), SILVER_EVENTS_SESSIONIZED,
                     mode="overwrite", partition_by=[S.EVENT_DATE])
    s = write_sessions_from_events(tables, e.version)
    n_events, n_sessions = tables.rows_after_overwrite(e), tables.rows_after_overwrite(s)
    return SessionizeReport("full", n_events, n_events, n_sessions, 0, -1 if last is None else last)


def run_incremental(conf: Config, tables: Tables, last_batch: int,
                    events_version: int | None = None) -> SessionizeReport:
    """Sessionize the bronze batches after ``last_batch`` and merge them into silver.

    ``events_version``: the silver.events_sessionized version ``last_batch`` was read from
    (default: the latest); both merges are pinned to the versions read here.
    """
    ev_version = tables.version(SILVER_EVENTS_SESSIONIZED) if events_version is None else events_version
    ss_version = tables.version(SILVER_SESSIONS)
    cached: list[DataFrame] = []  # persisted below, released in the finally

    def cache(df: DataFrame) -> DataFrame:
        cached.append(df.persist(StorageLevel.MEMORY_AND_DISK))
        return df

    new = cache(tables.read(BRONZE_EVENTS).filter(F.col(S.INGEST_BATCH) > last_batch))
    try:
        n_new, last = new.agg(F.count(F.lit(1)), F.max(S.INGEST_BATCH)).first()
        if n_new == 0:
            return SessionizeReport("up-to-date", 0, 0, 0, 0, last_batch)
        first_new = new.groupBy(S.USER_ID).agg(F.min(S.EVENT_TIME).alias("_first_new"))
        stored_sessions = tables.read(SILVER_SESSIONS, version=ss_version)
        # Per affected user: recompute from the latest stored session start <= first new event.
        cuts = cache(
            first_new.join(stored_sessions.select(S.USER_ID, S.SESSION_START), S.USER_ID, "left")
            .groupBy(S.USER_ID, "_first_new")
            .agg(F.max(F.when(F.col(S.SESSION_START) <= F.col("_first_new"), F.col(S.SESSION_START))).alias("_s"))
            .select(S.USER_ID, F.coalesce("_s", "_first_new").alias(_CUT))
        )
        # The stored sessions being recomputed: each affected user's from the cut on.
        recomputed_sessions = cache(
            stored_sessions.join(cuts, S.USER_ID).filter(F.col(S.SESSION_START) >= F.col(_CUT)).drop(_CUT))
        stored_events = (
            tables.read(SILVER_EVENTS_SESSIONIZED, version=ev_version)
            .filter(F.col(S.EVENT_DATE).isin(_session_dates(recomputed_sessions)))
            .withColumnRenamed(S.SESSION_ID, _STORED_SESSION)
            .join(cuts, S.USER_ID)
            .filter(F.col(S.EVENT_TIME) >= F.col(_CUT)).drop(_CUT)
        )
        recompute = stored_events.unionByName(
            new.select(*S.EVENT_SCHEMA.fieldNames()).withColumn(_STORED_SESSION, F.lit(None).cast("string")))
        sessionized = cache(_sessionize(recompute, conf))
        # A stored event whose session id came out the same is the same row (event fields +
        # session id): only new and re-assigned events are merged, so the MERGE rewrites no file
        # just because it holds a touched user's older events of the same session.
        changed = sessionized.filter(F.col(_STORED_SESSION).isNull()
                                     | (F.col(_STORED_SESSION) != F.col(S.SESSION_ID)))
        new_sessions = session_features(sessionized)
        obsolete = (
            recomputed_sessions.select(*S.SESSION_SCHEMA.fieldNames())
            .join(new_sessions.select(S.SESSION_ID), S.SESSION_ID, "left_anti")
        )
        session_changes = cache(
            new_sessions.withColumn(_DELETE, F.lit(False))
            .unionByName(obsolete.withColumn(_DELETE, F.lit(True))))
        n_deleted, n_sessions = session_changes.agg(
            F.sum(F.col(_DELETE).cast("long")), F.sum((~F.col(_DELETE)).cast("long"))).first()
        # The date is a function of the id (event time; session start), so keying by both
        # matches the same rows and lets each MERGE look only in the dates the changes touch.
        e = tables.merge(_sessionized_events(changed), SILVER_EVENTS_SESSIONIZED,
                         keys=[S.EVENT_ID, S.EVENT_DATE], partition_by=[S.EVENT_DATE],
                         expected_version=ev_version)
        tables.merge(session_changes, SILVER_SESSIONS, keys=[S.SESSION_ID, S.SESSION_DATE],
                     delete_flag=_DELETE,
                     partition_by=[S.SESSION_DATE], txn=Txn(SESSIONS_TXN, e.version),
                     expected_version=ss_version)
        n_events = changed.count()
    finally:
        for df in cached:
            df.unpersist()
    return SessionizeReport("incremental", n_new, n_events, n_sessions, n_deleted, last)


def _session_dates(sessions: DataFrame) -> list:
    """The dates ``sessions`` span, i.e. the event dates an incremental run must read: a user's
    sessions never overlap, so every stored event at or after the user's cut lies in one of the
    sessions recomputed from it; reading only their dates keeps a micro-batch from scanning every
    partition of silver.events_sessionized."""
    spans = sessions.select(F.explode(F.sequence(F.to_date(S.SESSION_START), F.to_date(S.SESSION_END))))
    return sorted(r[0] for r in spans.distinct().collect())


def last_sessionized_batch(tables: Tables, version: int | None = None) -> int | None:
    """Highest ingest batch already in silver.events_sessionized (at ``version``, default the
    latest), None if it does not exist."""
    if not tables.exists(SILVER_EVENTS_SESSIONIZED) or not tables.exists(SILVER_SESSIONS):
        return None
    value = tables.read(SILVER_EVENTS_SESSIONIZED, version=version).agg(F.max(S.INGEST_BATCH)).first()[0]
    return -1 if value is None else int(value)


def sessions_out_of_step(tables: Tables) -> bool:
    """True when both silver tables exist but silver.sessions was not built from the latest
    silver.events_sessionized (a run stopped between the two commits)."""
    if not tables.exists(SILVER_EVENTS_SESSIONIZED) or not tables.exists(SILVER_SESSIONS):
        return False
    return tables.txn_version(SILVER_SESSIONS, SESSIONS_TXN) != tables.version(SILVER_EVENTS_SESSIONIZED)


def run_sessionize(spark: SparkSession, conf: Config, tables: Tables, full: bool = False) -> SessionizeReport:
    """Sessionize new bronze batches (or everything with ``full=True``) into the silver tables.

    Holds the writer locks of both silver tables for the whole run (see the module docstring).
    """
    with tables.writer_lock(SILVER_EVENTS_SESSIONIZED, SILVER_SESSIONS, job="sessionize"):
        return _run_locked(conf, tables, full)


def _run_locked(conf: Config, tables: Tables, full: bool) -> SessionizeReport:
    timer = StageTimer(log)
    rebuilt = not full and sessions_out_of_step(tables)
    if rebuilt:
        with timer.stage("rebuild sessions"):
            log.warning("silver.sessions does not match silver.events_sessionized (a run stopped "
                        "between the two commits): rebuilding the sessions from the stored events")
            write_sessions_from_events(tables, tables.version(SILVER_EVENTS_SESSIONIZED))
    events_version = None if full else tables.version_or_missing(SILVER_EVENTS_SESSIONIZED)
    last = None if full else last_sessionized_batch(tables, events_version)
    with timer.stage("sessionize") as counts:
        report = (run_full(conf, tables) if last is None
                  else run_incremental(conf, tables, last, events_version))
        counts.update(mode=report.mode, new_events=report.new_events,
                      events_written=report.events_written, sessions_written=report.sessions_written,
                      sessions_deleted=report.sessions_deleted)
    report.sessions_rebuilt = rebuilt
    return report
