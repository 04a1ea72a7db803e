"""Sessionization with Spark's own machinery (window functions and SQL higher-order functions).

The rule, applied to each user's events in time order (ties broken by event_id):
an event opens a new session when it comes more than ``gap`` after the previous event, or more
than ``max_length`` after the start of the current session. The rule is *causal*: a session
boundary depends only on earlier events. That makes incremental runs exact: new events can only
change sessions from the latest stored session start before them onwards.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window, functions as F

from interest_lib import schema as S

_EPOCH = "_epoch_s"


def session_id_col(user_col: str = S.USER_ID, start_col: str = S.SESSION_START) -> F.Column:
    """Deterministic session id: 128-bit hex of (user, session start)."""
    return F.substring(
        F.sha2(F.concat_ws("|", F.col(user_col), F.date_format(start_col, "yyyy-MM-dd'T'HH:mm:ss.SSSSSS")), 256),
        1, 32,
    )


def _cut_start(max_length_us: int) -> F.Column:
    """Session start of a *late* event (more than max_length after its gap-session's start):
    the max-length cut applied iteratively, from the gap-session's start, over the user's late
    events up to this one (SQL ``aggregate``, JVM-side, no Python). Only late events can open a
    session: the first cut is the first late event, and every later cut is later still. Late
    events of earlier gap-sessions are older than the start, so they never cut."""
    return F.expr(
        f"aggregate(_late_times, _gap_start, (s, e) -> IF(e - s > {max_length_us}, e, s))"
    )


def assign_sessions(events: DataFrame, gap_minutes: int, max_session_minutes: int) -> DataFrame:
    """Add ``session_id`` (and ``session_start``) to every event.

    One shuffle of the events (by user), one sort and one window specification: running
    aggregates over each user's events in time order find each gap-session's start; only the
    rare events more than the maximum length after their gap-session's start go through the
    iterative cut (:func:`_cut_start`).

    Args:
        events: events with at least user_id, event_id, event_time; all of a user's events that
            can share a session must be present (see the module docstring).
        gap_minutes: inactivity gap that closes a session.
        max_session_minutes: longest time from a session's start to its last event.

    Returns:
        ``events`` plus ``session_id`` and ``session_start`` columns.
    """
    gap_us, max_us = gap_minutes * 60 * 1_000_000, max_session_minutes * 60 * 1_000_000
    by_user = Window.partitionBy(S.USER_ID).orderBy(S.EVENT_TIME, S.EVENT_ID)
    so_far = by_user.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    # Times never decrease in this order, so a gap-session's start is the latest gap opening.
    with_gap = (
        events.withColumn(_EPOCH, F.unix_micros(S.EVENT_TIME))
        .withColumn("_prev", F.lag(_EPOCH).over(by_user))
        .withColumn("_new", F.col("_prev").isNull() | (F.col(_EPOCH) - F.col("_prev") > gap_us))
        .withColumn("_gap_start", F.max(F.when(F.col("_new"), F.col(_EPOCH))).over(so_far))
        .withColumn("_late", F.col(_EPOCH) - F.col("_gap_start") > max_us)
        .withColumn("_late_times", F.collect_list(F.when(F.col("_late"), F.col(_EPOCH))).over(so_far))
    )
    start = F.when(F.col("_late"), _cut_start(max_us)).otherwise(F.col("_gap_start"))
    return (
        with_gap.withColumn(S.SESSION_START, F.timestamp_micros(start))
        .withColumn(S.SESSION_ID, session_id_col())
        .drop(_EPOCH, "_prev", "_new", "_gap_start", "_late", "_late_times")
    )


def session_features(sessionized: DataFrame) -> DataFrame:
    """One row per session (schema ``SESSION_SCHEMA``): times, counts per event type,
    categories visited, dominant category (most events; ties -> smallest id), purchase flag.

    Aggregates per (session, category) first, so the second aggregation runs on few rows.
    """
    type_counts = [
        F.sum((F.col(S.EVENT_TYPE) == t).cast("long")).alias(f"n_{t}") for t in S.EVENT_TYPES
    ]
    per_category = sessionized.groupBy(S.SESSION_ID, S.USER_ID, S.CATEGORY_ID).agg(
        F.count(F.lit(1)).alias("_n"), F.min(S.EVENT_TIME).alias("_t0"), F.max(S.EVENT_TIME).alias("_t1"),
        *type_counts,
    )
    sessions = (
        per_category.groupBy(S.SESSION_ID, S.USER_ID)
        .agg(
            F.min("_t0").alias(S.SESSION_START),
            F.max("_t1").alias(S.SESSION_END),
            F.sum("_n").alias(S.N_EVENTS),
            *[F.sum(f"n_{t}").alias(f"n_{t}") for t in S.EVENT_TYPES],
            F.array_sort(F.collect_list(S.CATEGORY_ID)).alias(S.CATEGORIES_VISITED),
            F.min_by(S.CATEGORY_ID, F.struct(-F.col("_n"), F.col(S.CATEGORY_ID))).alias(S.DOMINANT_CATEGORY),
        )
        .withColumn(S.SESSION_DATE, F.to_date(S.SESSION_START))
        .withColumn(S.DURATION_S, (F.unix_seconds(S.SESSION_END) - F.unix_seconds(S.SESSION_START)).cast("long"))
        .withColumn(S.HAS_PURCHASE, F.col("n_purchase") > 0)
    )
    return sessions.select(*S.SESSION_SCHEMA.fieldNames())
