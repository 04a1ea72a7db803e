"""``interest stream``: the streaming query, its trigger, and its progress in the log.

The query reads :func:`~interest_lib.streaming.sources.raw_stream` and hands every micro-batch
to :class:`~interest_lib.streaming.micro_batch.MicroBatchProcessor` (``foreachBatch``), so it
runs on either Delta engine. Its checkpoint (offsets and commits) makes it restartable: a
restart, or a run after ``kill -9``, goes on from the last micro-batch Spark recorded, and the
Delta app transactions make a replayed micro-batch append nothing twice.

Progress: after each micro-batch one log line from the query's own progress (input rows,
rows/s in and processed, batch duration, and the lag: seconds the oldest file of the batch waited
since it landed, or the Kafka offsets behind the latest) beside the micro-batch's own counts; the
same numbers are appended to gold.stream_progress (one row per micro-batch, idempotent per batch
id), which the run report draws.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Optional

from pyspark.sql import SparkSession

from interest_lib.conf import Config
from interest_lib.errors import InputError
from interest_lib.logs import get_logger
from interest_lib.pseudonymise import resolve_key
from interest_lib.spark import INTERPRETED_SQL, unchosen_settings
from interest_lib.storage import Tables, Txn
from interest_lib.streaming.micro_batch import BatchReport, MicroBatchProcessor, scoring_prerequisites
from interest_lib.streaming.sources import landing_path, raw_stream

log = get_logger(__name__)


@dataclass
class StreamReport:
    """Totals of one run of the query (this process's micro-batches)."""

    query: str
    source: str
    checkpoint: str
    batches: int = 0
    replayed: int = 0
    rows_in: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates_removed: int = 0
    alerts: int = 0
    scored_users: int = 0
    reasons: dict = field(default_factory=dict)

    def add(self, r: BatchReport) -> None:
        """Count one micro-batch in."""
        self.batches += 1
        self.replayed += int(r.skipped)
        self.rows_in += r.rows_in
        self.accepted += r.accepted
        self.quarantined += r.quarantined
        self.duplicates_removed += r.duplicates_removed
        self.alerts += r.alerts
        self.scored_users += r.scored_users or 0
        for k, v in r.reasons.items():
            self.reasons[k] = self.reasons.get(k, 0) + v

    def summary(self) -> str:
        """One line for the CLI."""
        return (f"stream {self.query} ({self.source}): {self.batches} micro-batches ({self.replayed} replayed), "
                f"rows in {self.rows_in:,} = accepted {self.accepted:,} + quarantined {self.quarantined:,} + "
                f"duplicates removed {self.duplicates_removed:,}; {self.alerts} migration alerts, "
                f"{self.scored_users:,} user scores")


def checkpoint_path(conf: Config) -> str:
    """``stream.checkpoint`` or ``<warehouse>/_checkpoints/<query_name>``."""
    if conf.stream.checkpoint:
        return conf.stream.checkpoint
    wh = conf.storage.warehouse
    base = wh.rstrip("/") if "://" in wh or wh.startswith("dbfs:") else os.path.abspath(wh)
    return f"{base}/_checkpoints/{conf.stream.query_name}"


def _scorer(spark: SparkSession, conf: Config, tables: Tables):
    """(broadcast predictors, category keys, predictors), loaded once for the query's life."""
    from interest_lib.scoring.job import category_keys, load_predictors

    missing = scoring_prerequisites(tables)
    if missing:
        raise InputError(
            f"stream.score is on but {', '.join(missing)} do not exist under {tables.conf.warehouse}: run "
            "`interest featurize` (and `interest train`, or set score.migration / score.evolution to "
            "baselines) first, or set stream.score=false")
    predictors = load_predictors(conf, tables)
    log.info("stream scoring with %s (%s) and %s (%s), loaded once per Python worker",
             predictors[0].name, predictors[0].version, predictors[1].name, predictors[1].version)
    return spark.sparkContext.broadcast(predictors), category_keys(tables), predictors


def _check_checkpoint(cp: str, tables: Tables, app_id: str) -> None:
    """Refuse a new (empty) local checkpoint for a query whose micro-batches bronze.events already
    holds: its batch ids would restart at 0 and every append would be taken for a replay."""
    from interest_lib.storage.catalog import BRONZE_EVENTS

    if "://" in cp or cp.startswith("dbfs:") or os.path.isdir(os.path.join(cp, "offsets")):
        return
    done = tables.txn_version(BRONZE_EVENTS, app_id)
    if done is not None:
        raise InputError(
            f"stream checkpoint {cp} is new, but {BRONZE_EVENTS} already holds micro-batches 0..{done} of "
            f"this query ({app_id}): restore its checkpoint, or start a new query with another "
            "stream.query_name (its app id) so that no append is taken for a replay")


def progress_line(progress: dict, report: Optional[BatchReport]) -> str:
    """The log line of one micro-batch's query progress (see the module doc)."""
    duration = progress.get("batchDuration") or progress.get("durationMs", {}).get("triggerExecution", 0)
    latency = landing_latency(report)
    lag = "" if latency is None else f", lag {latency:.1f} s since the oldest file landed"
    for src in progress.get("sources", []):
        metrics = src.get("metrics") or {}
        if "avgOffsetsBehindLatest" in metrics:
            lag += f", offsets behind latest: avg {metrics['avgOffsetsBehindLatest']}, max {metrics.get('maxOffsetsBehindLatest')}"
    return (f"progress batch {progress.get('batchId')}: {progress.get('numInputRows', 0):,} input rows, "
            f"{progress.get('inputRowsPerSecond', 0.0):,.1f} rows/s in, "
            f"{progress.get('processedRowsPerSecond', 0.0):,.1f} rows/s processed, "
            f"batch duration {duration / 1000:.1f} s{lag}")


def landing_latency(report: Optional[BatchReport]) -> Optional[float]:
    """Seconds from the landing of the batch's oldest file to the end of its micro-batch (its
    scores committed when ``stream.score`` is on); None without file times (Kafka)."""
    if report is None or not report.files:
        return None
    landed = [m for m in report.files.values() if m is not None]
    return report.finished_at - min(landed) if landed else None


def progress_row(query: str, progress: dict, report: Optional[BatchReport]) -> dict:
    """One gold.stream_progress row from a query progress (``StreamingQueryProgress`` as a dict)
    and the micro-batch's own report."""
    import datetime as dt

    duration = progress.get("batchDuration") or progress.get("durationMs", {}).get("triggerExecution", 0)
    return {"query": query, "batch_id": int(progress.get("batchId", -1)),
            "input_rows": int(progress.get("numInputRows", 0) or 0),
            "input_rows_per_s": float(progress.get("inputRowsPerSecond", 0.0) or 0.0),
            "processed_rows_per_s": float(progress.get("processedRowsPerSecond", 0.0) or 0.0),
            "batch_seconds": float(duration or 0) / 1000.0, "latency_s": landing_latency(report),
            "accepted": None if report is None else int(report.accepted),
            "scored_users": None if report is None or report.scored_users is None else int(report.scored_users),
            "recorded_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)}


def record_progress(spark: SparkSession, tables: Tables, rows: list[dict]) -> None:
    """Append micro-batch progress rows to gold.stream_progress (a replay of the same batch ids,
    after a restart, is skipped by the app transaction of the query)."""
    from interest_lib.storage.catalog import CONTRACTS, GOLD_STREAM_PROGRESS

    if not rows:
        return
    df = spark.createDataFrame(rows, CONTRACTS[GOLD_STREAM_PROGRESS].ddl())
    tables.write(df, GOLD_STREAM_PROGRESS, mode="append",
                 txn=Txn(f"stream-progress:{rows[0]['query']}", max(r["batch_id"] for r in rows) + 1))


#: Spark SQL settings of the micro-batches with ``stream.small_batch_sql`` (see
#: :class:`~interest_lib.conf.sections.StreamConf`). Measured with bench/bench_stream.py
#: (2,000 events/s, 2,000 users, 2026-12-03): micro-batches 14-17.6 s instead of 18-21.5 s.
SMALL_BATCH_SQL = {**INTERPRETED_SQL, "spark.sql.adaptive.enabled": "false"}


@contextmanager
def small_batch_sql(spark: SparkSession, conf: Config):
    """Within the block, the session runs with :data:`SMALL_BATCH_SQL` (when
    ``stream.small_batch_sql``; keys that ``spark.extra`` or the launch names are left alone,
    :func:`~interest_lib.spark.unchosen_settings`); the previous values are restored after it
    (tests share one session with other jobs)."""
    settings = unchosen_settings(spark, conf.spark, SMALL_BATCH_SQL) if conf.stream.small_batch_sql else {}
    before = {k: spark.conf.get(k, None) for k in settings}
    for k, value in settings.items():
        spark.conf.set(k, value)
    try:
        yield
    finally:
        for k, value in before.items():
            if value is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, value)


def run_stream(spark: SparkSession, conf: Config, tables: Tables, trigger: Optional[str] = None,
               timeout_seconds: Optional[float] = None,
               on_batch: Optional[Callable[[BatchReport], None]] = None) -> StreamReport:
    """Run the streaming query until its trigger ends it (available_now / once), the timeout
    passes, or it fails (the exception is raised here).

    Args:
        spark: the session (for ``stream.source=kafka`` built with the Kafka package, see
            :func:`interest_lib.spark.add_packages`).
        conf: full configuration (``stream`` and everything batch ingest to scoring read).
        tables: table API (either engine).
        trigger: overrides ``stream.trigger``.
        timeout_seconds: overrides ``stream.timeout_seconds`` (0 = none).
        on_batch: called with each micro-batch's report (benchmarks).

    Returns:
        :class:`StreamReport` over this run's micro-batches.
    """
    s = conf.stream
    trigger = trigger or s.trigger
    timeout = s.timeout_seconds if timeout_seconds is None else timeout_seconds
    key = resolve_key(conf, spark.conf.get("spark.master", ""))
    scorer = _scorer(spark, conf, tables) if s.score else None
    processor = MicroBatchProcessor(spark, conf, tables, key, scorer)
    cp = checkpoint_path(conf)
    _check_checkpoint(cp, tables, processor.app_id)
    where = landing_path(conf) if s.source == "files" else f"{s.kafka_bootstrap_servers}/{s.kafka_topic}"
    report = StreamReport(s.query_name, f"{s.source}: {where}", cp)

    def each(batch, batch_id):
        processor(batch, batch_id)
        r = processor.reports[-1]
        report.add(r)
        if on_batch is not None:
            on_batch(r)

    writer = (raw_stream(spark, conf).writeStream.queryName(s.query_name)
              .option("checkpointLocation", cp).foreachBatch(each))
    if trigger == "available_now":
        writer = writer.trigger(availableNow=True)
    elif trigger == "once":
        writer = writer.trigger(once=True)
    elif s.trigger_seconds > 0:
        writer = writer.trigger(processingTime=f"{s.trigger_seconds} seconds")
    log.info("stream %s: %s -> bronze.events ... gold.user_interest_scores, trigger %s, checkpoint %s",
             s.query_name, report.source, trigger, cp)
    with small_batch_sql(spark, conf):
        query = writer.start()
        started, seen = time.monotonic(), [-1]

        def log_progress():
            rows = []
            for progress in query.recentProgress:
                batch_id = progress.get("batchId", -1)
                if batch_id > seen[0] and progress.get("numInputRows", 0) > 0:
                    seen[0] = batch_id
                    mine = next((r for r in reversed(processor.reports) if r.batch_id == batch_id), None)
                    log.info("stream %s", progress_line(progress, mine))
                    rows.append(progress_row(s.query_name, progress, mine))
            record_progress(spark, tables, rows)

        try:
            while query.isActive:
                query.awaitTermination(1.0)
                log_progress()
                if timeout and time.monotonic() - started > timeout:
                    log.info("stream %s: stream.timeout_seconds=%s reached, stopping", s.query_name, timeout)
                    query.stop()
        except KeyboardInterrupt:
            query.stop()
        log_progress()
    error = query.exception()
    if error is not None:
        raise RuntimeError(f"stream {s.query_name} failed: {error}") from None
    log.info("%s", report.summary())
    return report
