"""Migrations visible on a user's current, partial window (``gold.migration_alerts``).

Batch detection (:mod:`interest_lib.features.migrations`) waits for the next window to confirm a
migration. The stream cannot wait: after each micro-batch it compares each touched user's
profile up to the previous active window (P) with what they did so far in their latest window
(Q, the partial window alone) using the same :func:`compare_windows` and the same test
(:func:`passes_migration_test`, ``migration.*`` thresholds, ``migration.min_events`` events in
the window). An alert is written once per (user, window, new top interest), with the time it was
first seen; later micro-batches that see the same migration do not write it again.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window, functions as F, types as T

from interest_lib import schema as S
from interest_lib.conf import Config
from interest_lib.features.migrations import (
    DIVERGENCE, FROM, MAGNITUDE, TO, compare_windows, passes_migration_test,
)
from interest_lib.features.profiles import PROFILE_CATEGORIES, PROFILE_SHARES, WINDOW_CATEGORIES, WINDOW_SHARES
from interest_lib.features.windows import WINDOW, WINDOW_START

FIRST_SEEN = "first_seen"
WINDOW_EVENTS = "window_events"
STREAM_BATCH = "stream_batch"
#: gold.migration_alerts' columns, in order (the catalog's contract).
ALERT_COLUMNS = [S.USER_ID, WINDOW, WINDOW_START, FROM, TO, DIVERGENCE, MAGNITUDE, WINDOW_EVENTS,
                 FIRST_SEEN, STREAM_BATCH]
ALERT_KEYS = (S.USER_ID, WINDOW, TO)

_SCHEMA = T.StructType([
    T.StructField(S.USER_ID, T.StringType()), T.StructField(WINDOW, T.LongType()),
    T.StructField("_start_us", T.LongType()), T.StructField(FROM, T.StringType()),
    T.StructField(TO, T.StringType()), T.StructField(DIVERGENCE, T.DoubleType()),
    T.StructField(MAGNITUDE, T.DoubleType()), T.StructField(WINDOW_EVENTS, T.LongType()),
])


def _partial_candidates(conf: Config):
    mig, active = conf.migration, conf.stages.active_share

    def run(batches):
        import pandas as pd

        cols = [f.name for f in _SCHEMA.fields]
        for pdf in batches:
            out = []
            for user, window, start, n, p_cats, p_shares, cats, shares in zip(
                    pdf[S.USER_ID], pdf[WINDOW], pdf["_start_us"], pdf[S.N_EVENTS], pdf["p_cats"],
                    pdf["p_shares"], pdf[WINDOW_CATEGORIES], pdf[WINDOW_SHARES]):
                frm, to, js, to_before, to_after, from_before, from_after, _lost, _gained = compare_windows(
                    p_cats, p_shares, cats, shares, int(n), None, None, 0, active)
                if passes_migration_test(frm, to, js, to_before, to_after, from_before, from_after, mig):
                    out.append((user, int(window), int(start), frm, to, js, to_after - to_before, int(n)))
            yield pd.DataFrame(out, columns=cols)
    return run


def partial_window_alerts(profiles: DataFrame, conf: Config) -> DataFrame:
    """Alerts from the profile rows of the touched users (every active window of each, at least
    the latest and the one before it): one row per user whose latest window already shows a
    migration, without ``first_seen`` / ``stream_batch`` (added when written)."""
    by_user = Window.partitionBy(S.USER_ID).orderBy(WINDOW)
    latest = Window.partitionBy(S.USER_ID)
    rows = (
        profiles.select(S.USER_ID, WINDOW, F.unix_micros(WINDOW_START).alias("_start_us"), S.N_EVENTS,
                        WINDOW_CATEGORIES, WINDOW_SHARES, PROFILE_CATEGORIES, PROFILE_SHARES)
        .withColumn("p_cats", F.lag(PROFILE_CATEGORIES).over(by_user))
        .withColumn("p_shares", F.lag(PROFILE_SHARES).over(by_user))
        .withColumn("_last", F.max(WINDOW).over(latest))
        .filter((F.col(WINDOW) == F.col("_last")) & F.col("p_cats").isNotNull()
                & (F.col(S.N_EVENTS) >= conf.migration.min_events))
        .drop("_last", PROFILE_CATEGORIES, PROFILE_SHARES)
    )
    found = rows.mapInPandas(_partial_candidates(conf), _SCHEMA)
    return found.withColumn(WINDOW_START, F.timestamp_micros("_start_us")).drop("_start_us")


def new_alerts(found: DataFrame, existing: DataFrame | None, first_seen, stream_batch: int) -> DataFrame:
    """The alerts of ``found`` not already in ``existing`` (gold.migration_alerts, by
    user, window and new top interest), stamped with ``first_seen`` and the micro-batch id."""
    if existing is not None:
        found = found.join(existing.select(*ALERT_KEYS), list(ALERT_KEYS), "left_anti")
    return (found.withColumn(FIRST_SEEN, F.lit(first_seen).cast("timestamp"))
            .withColumn(STREAM_BATCH, F.lit(stream_batch).cast("long")).select(*ALERT_COLUMNS))
