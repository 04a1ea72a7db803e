"""Dedupe by event_id, flagged on the validated records *before* the daily cap counts them.

Why before the cap. A re-sent file (at-least-once delivery) repeats events already stored or
already in the same input. Counted by the cap, those copies used up a user-day's allowance and
pushed the day's genuinely new events into quarantine as ``user_day_over_cap``, while dedupe
then removed the copies the cap had kept. Flagged first, a copy is never counted: the cap sees
each event once, as the copy dedupe keeps. When that kept copy is over the cap it is
quarantined, and its other copies stay flagged as duplicates, so an over-cap event never gets
in through a copy.
"""

from __future__ import annotations

from typing import Optional

from pyspark.sql import Column, DataFrame, Window, functions as F

from interest_lib import schema as S
from interest_lib.ingest.validate import canonical

#: Boolean column set by :func:`flag_duplicates`.
DUPLICATE = "_duplicate"

_ID, _SPREAD = "_dedupe_id", "_dedupe_spread"


def flag_duplicates(checked: DataFrame, existing_ids: Optional[DataFrame]) -> DataFrame:
    """``checked`` (validated raw records: ``reason`` null = valid, parsed ``_ts``) with
    :data:`DUPLICATE`: true on every valid copy of an event_id but the one from the earliest
    source file (then event time, user, event type), and on valid records whose event_id is
    already stored (``existing_ids``: a frame with an event_id column); false on invalid
    records, which are quarantined with their own reason and never deduplicated."""
    valid = F.col(S.REASON).isNull()
    # One window over all records (a union of valid and invalid ones would read a stream's
    # micro-batch twice). Invalid records get no id; a hash of the record spreads them over
    # partitions instead of gathering them all under a null key.
    spread = F.when(~valid, F.xxhash64(*checked.columns))
    # the values bronze.events stores, so the copy kept is the one it gets
    order = (Window.partitionBy(_ID, _SPREAD)
             .orderBy(S.SOURCE_FILE, "_ts", canonical(S.USER_ID), canonical(S.EVENT_TYPE)))
    keyed = checked.withColumn(_ID, F.when(valid, canonical(S.EVENT_ID))).withColumn(_SPREAD, spread)
    sql = checked.sparkSession.conf
    if sql.get("spark.sql.adaptive.enabled").lower() != "true":
        # The caller persists the result and every later stage runs on its partitions. Adaptive
        # execution coalesces them; without it (a stream's small micro-batches) the window
        # would leave all spark.sql.shuffle.partitions: 8 tasks a stage instead of 1-2. So as
        # many as the input has, up to that setting.
        shuffle = int(sql.get("spark.sql.shuffle.partitions"))
        keyed = keyed.repartition(max(1, min(checked.rdd.getNumPartitions(), shuffle)), _ID, _SPREAD)
    flagged = keyed.withColumn("_n", F.row_number().over(order))
    dup = F.col("_n") > 1
    if existing_ids is not None:
        stored = existing_ids.select(F.col(S.EVENT_ID).alias(_ID)).distinct().withColumn("_stored", F.lit(True))
        flagged = flagged.join(stored, _ID, "left")
        dup = dup | F.col("_stored").isNotNull()
    return flagged.withColumn(DUPLICATE, valid & dup).select(*checked.columns, DUPLICATE)


def counted(df: DataFrame) -> Column:
    """Valid records dedupe keeps (every valid record when ``df`` was never flagged): what the
    daily cap counts."""
    valid = F.col(S.REASON).isNull()
    return valid & ~F.col(DUPLICATE) if DUPLICATE in df.columns else valid
