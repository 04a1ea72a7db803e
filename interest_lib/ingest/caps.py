"""Skew at the door: a per-user daily cap on events, and what the ingest report shows of skew.

Why a cap and not only AQE or salting. Every stage after ingest partitions by user (sessions,
windows, sequences): one user's events are one task's input, whatever Spark does. AQE's skew
join handling splits oversized *join* partitions, not a window over one key; salting a
per-user window changes what it computes. A bot with a million events is not a person whose
interests we model, so the events a person cannot produce (``ingest.max_events_per_user_day``
valid events on one UTC day) are quarantined with the reason :data:`OVER_CAP`: the earliest
``cap`` of that day are kept, the rest are counted and kept in bronze.events_quarantine, never
dropped silently. Skew by *item* (a viral item) needs no cap: item-keyed aggregations combine
map-side and item joins broadcast the catalogue, and AQE (on by default) splits a skewed join.

The ranking that picks the kept events runs only on the user-days over the cap (found by a
map-side combined count and broadcast back), so the cap costs one aggregation over the valid
rows, not a shuffle of every event.
"""

from __future__ import annotations

from typing import Optional

from pyspark.sql import DataFrame, Window, functions as F

from interest_lib import schema as S
from interest_lib.ingest.validate import REASONS

#: Quarantine reason of the events over the cap (explained in :data:`REASONS`).
OVER_CAP = "user_day_over_cap"
assert OVER_CAP in REASONS

_USER, _DAY, _HEAVY, _RANK = "_cap_user", "_cap_day", "_cap_heavy", "_cap_rank"


def heavy_user_days(checked: DataFrame, cap: int) -> DataFrame:
    """(``_cap_user``, ``_cap_day``, ``events``) of the user-days with more than ``cap`` valid
    events (``checked``: records with ``reason`` and the parsed ``_ts``; small: at most
    valid events / cap rows)."""
    valid = checked.filter(F.col(S.REASON).isNull())
    return (valid.groupBy(F.trim(S.USER_ID).alias(_USER), F.to_date("_ts").alias(_DAY))
            .agg(F.count(F.lit(1)).alias("events")).filter(F.col("events") > cap))


def cap_user_days(checked: DataFrame, cap: int, heavy: Optional[DataFrame] = None) -> DataFrame:
    """``checked`` with ``reason`` set to :data:`OVER_CAP` on the valid records of a user beyond
    the ``cap`` earliest of the same UTC day (ordered by time, then event id and file); every
    other row unchanged, same columns. ``cap`` <= 0: ``checked`` itself.

    Args:
        checked: records with ``reason`` (null = valid), raw ``user_id`` and parsed ``_ts``.
        cap: the most valid events one user may have on one UTC day.
        heavy: :func:`heavy_user_days` of ``checked`` when the caller already has it.
    """
    if cap <= 0:
        return checked
    heavy = heavy_user_days(checked, cap) if heavy is None else heavy
    valid = F.col(S.REASON).isNull()
    keyed = (checked.withColumn(_USER, F.when(valid, F.trim(S.USER_ID)))
             .withColumn(_DAY, F.when(valid, F.to_date("_ts"))))
    flagged = keyed.join(F.broadcast(heavy.select(_USER, _DAY, F.lit(True).alias(_HEAVY))),
                         [_USER, _DAY], "left")
    is_heavy = F.col(_HEAVY).isNotNull()
    order = Window.partitionBy(_USER, _DAY).orderBy("_ts", S.EVENT_ID, S.SOURCE_FILE)
    over = (flagged.filter(is_heavy).withColumn(_RANK, F.row_number().over(order))
            .withColumn(S.REASON, F.when(F.col(_RANK) > cap, F.lit(OVER_CAP)).otherwise(F.col(S.REASON)))
            .drop(_RANK))
    columns = checked.columns
    return flagged.filter(~is_heavy).select(*columns).unionByName(over.select(*columns))


def heavy_users_report(heavy: DataFrame, cap: int, top: int, key: bytes) -> list[dict]:
    """The ``top`` users with the most events over the cap: pseudonymised user id (as in
    bronze.events), days over the cap, valid events on those days, events quarantined."""
    from interest_lib.pseudonymise import pseudonymise_col

    rows = (heavy.groupBy(_USER).agg(F.count(F.lit(1)).alias("days_over_cap"),
                                     F.sum("events").alias("events_on_those_days"),
                                     F.sum(F.col("events") - cap).alias("quarantined"))
            .orderBy(F.desc("quarantined"), _USER).limit(top)
            .select(pseudonymise_col(_USER, key).alias(S.USER_ID), "days_over_cap", "events_on_those_days",
                    "quarantined").collect())
    return [r.asDict() for r in rows]


def heavy_items_report(checked: DataFrame, share: float, top: int, valid_rows: int) -> list[dict]:
    """Items holding at least ``share`` of the ``valid_rows`` valid records (at most ``top``):
    item id, events and share, biggest first."""
    if valid_rows <= 0 or top <= 0:
        return []
    rows = (checked.filter(F.col(S.REASON).isNull() & F.col(S.ITEM_ID).isNotNull())
            .groupBy(F.trim(S.ITEM_ID).alias(S.ITEM_ID)).agg(F.count(F.lit(1)).alias("events"))
            .filter(F.col("events") >= share * valid_rows).orderBy(F.desc("events"), S.ITEM_ID).limit(top).collect())
    return [{S.ITEM_ID: r[S.ITEM_ID], "events": r["events"], "share": round(r["events"] / valid_rows, 4)}
            for r in rows]
