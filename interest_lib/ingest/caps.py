"""Skew at the door: a per-user daily cap on events, and what the ingest report shows of skew.

Why a cap and not only AQE or salting. Every stage after ingest partitions by user (sessions,
windows, sequences): one user's events are one task's input, whatever Spark does. AQE's skew
join handling splits oversized *join* partitions, not a window over one key; salting a
per-user window changes what it computes. A bot with a million events is not a person whose
interests we model, so the events a person cannot produce (``ingest.max_events_per_user_day``
valid events on one UTC day, those already in bronze.events included, each event counted once:
copies dedupe removes are not counted, :mod:`.dedupe`) are quarantined with the
reason :data:`OVER_CAP`: the earliest ``cap`` of that day are kept (of each run, what the cap
still allows), the rest are counted and kept in bronze.events_quarantine, never dropped
silently. Skew by *item* (a viral item) needs no cap: item-keyed aggregations combine map-side
and item joins broadcast the catalogue, and AQE (on by default) splits a skewed join.

Where the cut falls is found without gathering a heavy user-day into one task: the user-days
over the cap come from a map-side combined count, their events are counted per minute (again
combined map-side), a running sum over those minute counts (at most 1,440 rows a user-day) finds
the minute in which the cap-th earliest event lies, and only that minute's events are ranked.
Events of earlier minutes are kept and of later minutes quarantined where they are read, so a
bot's million events are never shuffled or sorted (the row-number window this replaced put
~476k of them in one task: a 47.6x longest-to-median task, docs/scale.md).
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

from pyspark.sql import Column, DataFrame, Window, functions as F

from interest_lib import schema as S
from interest_lib.ingest.dedupe import counted
from interest_lib.ingest.validate import REASONS, canonical

#: Quarantine reason of the events over the cap (explained in :data:`REASONS`).
OVER_CAP = "user_day_over_cap"
assert OVER_CAP in REASONS

_USER, _DAY, _MINUTE = "_cap_user", "_cap_day", "_cap_minute"
_CUT_MINUTE, _BEFORE_CUT = "_cap_cut_minute", "_cap_before_cut"
_ALLOW = "_cap_allow"  # events of the user-day the cap still allows in this batch


def heavy_user_days(checked: DataFrame, cap: int, stored: Optional[DataFrame] = None,
                    key: Optional[bytes] = None) -> DataFrame:
    """(``_cap_user``, ``_cap_day``, ``events``, ``_cap_allow``) of the user-days whose valid
    events exceed what the cap still allows them (``checked``: records with ``reason`` and the
    parsed ``_ts``, and :data:`~.dedupe.DUPLICATE` when flagged: duplicates are not counted;
    small: at most valid events / cap rows). ``_cap_allow`` is ``cap`` minus the
    events the user-day already has in ``stored`` (pseudonymised ``user_id``, ``event_date``,
    ``events``: bronze.events' counts, matched through ``key``), at least 0; without ``stored``,
    ``cap``."""
    if stored is not None and key is None:
        raise ValueError("heavy_user_days: stored user-days are matched by pseudonymised user id: pass the key")
    valid = checked.filter(counted(checked))
    counts = (valid.groupBy(canonical(S.USER_ID).alias(_USER), F.to_date("_ts").alias(_DAY))
              .agg(F.count(F.lit(1)).alias("events")))
    if stored is None:
        allow = counts.withColumn(_ALLOW, F.lit(cap).cast("long"))
    else:
        from interest_lib.pseudonymise import pseudonymise_col

        before = stored.select(F.col(S.USER_ID).alias("_cap_pseudo"), F.col(S.EVENT_DATE).alias(_DAY),
                               F.col("events").alias("_cap_stored"))
        allow = (counts.withColumn("_cap_pseudo", pseudonymise_col(_USER, key))
                 .join(before, ["_cap_pseudo", _DAY], "left")
                 .withColumn(_ALLOW, F.greatest(F.lit(0).cast("long"),
                                                F.lit(cap) - F.coalesce(F.col("_cap_stored"), F.lit(0))))
                 .drop("_cap_pseudo", "_cap_stored"))
    return allow.filter(F.col("events") > F.col(_ALLOW))


def stored_user_days(bronze: DataFrame, since: Optional[dt.date] = None,
                     days: Optional[list[dt.date]] = None) -> DataFrame:
    """Valid events already stored per (pseudonymised ``user_id``, ``event_date``) of
    bronze.events, as :func:`heavy_user_days` reads them: from ``since`` on and / or on
    ``days`` only (partition filters: a backfill of a few old days reads those days, not the
    years since)."""
    if since is not None:
        bronze = bronze.filter(F.col(S.EVENT_DATE) >= F.lit(since))
    if days is not None:
        bronze = bronze.filter(F.col(S.EVENT_DATE).isin(list(days)))
    return bronze.groupBy(S.USER_ID, S.EVENT_DATE).agg(F.count(F.lit(1)).alias("events"))


def _minute(ts: str) -> Column:
    """Whole minutes since the epoch: exact, and ordered as the timestamps are."""
    return F.expr(f"unix_micros(`{ts}`) div 60000000")


def cut_minutes(heavy_events: DataFrame) -> DataFrame:
    """One row per heavy user-day (``heavy_events``: its valid events with ``_cap_user``,
    ``_cap_day``, ``_cap_minute`` and the allowance ``_cap_allow``): the first minute whose
    running count of events passes the allowance (``_cap_cut_minute``, the minute of the first
    event over it) and the number of events in the minutes before it (``_cap_before_cut``, at
    most the allowance)."""
    per_minute = heavy_events.groupBy(_USER, _DAY, _MINUTE).agg(F.count(F.lit(1)).alias("_n"),
                                                                 F.first(_ALLOW).alias(_ALLOW))
    running = F.sum("_n").over(Window.partitionBy(_USER, _DAY).orderBy(_MINUTE))
    return (per_minute.withColumn("_through", running)
            .withColumn(_BEFORE_CUT, F.col("_through") - F.col("_n"))
            .filter((F.col(_BEFORE_CUT) <= F.col(_ALLOW)) & (F.col("_through") > F.col(_ALLOW)))
            .select(_USER, _DAY, F.col(_MINUTE).alias(_CUT_MINUTE), _BEFORE_CUT))


def cap_user_days(checked: DataFrame, cap: int, heavy: Optional[DataFrame] = None,
                  stored: Optional[DataFrame] = None, key: Optional[bytes] = None) -> DataFrame:
    """``checked`` with ``reason`` set to :data:`OVER_CAP` on the valid records of a user beyond
    the ``cap`` earliest of the same UTC day (ordered by time, then event id and file; ``cap``
    less the day's events in ``stored`` when given); every other row unchanged, same columns.
    Records flagged :data:`~.dedupe.DUPLICATE` are neither counted nor capped: dedupe removes
    them (with the copy it keeps, when that one is over the cap).
    ``cap`` <= 0: ``checked`` itself.

    Args:
        checked: records with ``reason`` (null = valid), raw ``user_id`` and parsed ``_ts``.
        cap: the most valid events one user may have on one UTC day.
        heavy: :func:`heavy_user_days` of ``checked`` when the caller already has it.
        stored: :func:`stored_user_days` of bronze.events (with the pseudonymisation ``key``):
            the cap then counts a user-day's events already stored, and only what it still
            allows of this batch's is kept (a day arrives over several runs or micro-batches).

    No user-day over the cap (the usual batch): ``checked`` itself, found with one small job on
    ``heavy``. Every later use of the frame (the reason counts, the quarantine, the events
    written) then plans no cap joins, windows or unions: ingest on a small store ran 21 Spark
    jobs instead of 46 and took 40% less driver CPU (2026-12-06).
    """
    if cap <= 0:
        return checked
    heavy = heavy_user_days(checked, cap, stored, key) if heavy is None else heavy
    if heavy.isEmpty():
        return checked
    valid = counted(checked)
    keyed = (checked.withColumn(_USER, F.when(valid, canonical(S.USER_ID)))
             .withColumn(_DAY, F.when(valid, F.to_date("_ts"))))
    heavy_keys = F.broadcast(heavy.select(_USER, _DAY, _ALLOW))
    flagged = keyed.join(heavy_keys, [_USER, _DAY], "left")
    is_heavy = F.col(_ALLOW).isNotNull()
    heavy_events = flagged.filter(is_heavy).withColumn(_MINUTE, _minute("_ts"))
    # one row per heavy user-day: small, broadcast to where the heavy events are read. Heavy
    # events are valid and counted (invalid rows and duplicates have no key), so a null reason
    # is "kept".
    located = heavy_events.join(F.broadcast(cut_minutes(heavy_events)), [_USER, _DAY])
    at_cut = F.col(_MINUTE) == F.col(_CUT_MINUTE)
    rank = F.row_number().over(Window.partitionBy(_USER, _DAY).orderBy("_ts", S.EVENT_ID, S.SOURCE_FILE))
    in_cut_minute = (located.filter(at_cut)
                     .withColumn(S.REASON, F.when(F.col(_BEFORE_CUT) + rank > F.col(_ALLOW), F.lit(OVER_CAP))))
    elsewhere = (located.filter(~at_cut)
                 .withColumn(S.REASON, F.when(F.col(_MINUTE) > F.col(_CUT_MINUTE), F.lit(OVER_CAP))))
    columns = checked.columns
    return (flagged.filter(~is_heavy).select(*columns)
            .unionByName(elsewhere.select(*columns)).unionByName(in_cut_minute.select(*columns)))


def heavy_users_report(heavy: DataFrame, top: int, key: bytes) -> list[dict]:
    """The ``top`` users with the most events over the cap: pseudonymised user id (as in
    bronze.events), days over the cap, valid events on those days, events quarantined."""
    from interest_lib.pseudonymise import pseudonymise_col

    rows = (heavy.groupBy(_USER).agg(F.count(F.lit(1)).alias("days_over_cap"),
                                     F.sum("events").alias("events_on_those_days"),
                                     F.sum(F.col("events") - F.col(_ALLOW)).alias("quarantined"))
            .orderBy(F.desc("quarantined"), _USER).limit(top)
            .select(pseudonymise_col(_USER, key).alias(S.USER_ID), "days_over_cap", "events_on_those_days",
                    "quarantined").collect())
    return [r.asDict() for r in rows]


def heavy_items_report(checked: DataFrame, share: float, top: int, kept_rows: int) -> list[dict]:
    """Items holding at least ``share`` of the ``kept_rows`` records that ingest keeps (valid,
    within the cap, not a duplicate: a re-sent file's copies do not make an item heavy), at most
    ``top`` of them: item id, events and share, biggest first."""
    if kept_rows <= 0 or top <= 0:
        return []
    rows = (checked.filter(counted(checked) & F.col(S.ITEM_ID).isNotNull())
            .groupBy(F.trim(S.ITEM_ID).alias(S.ITEM_ID)).agg(F.count(F.lit(1)).alias("events"))
            .filter(F.col("events") >= share * kept_rows).orderBy(F.desc("events"), S.ITEM_ID).limit(top).collect())
    return [{S.ITEM_ID: r[S.ITEM_ID], "events": r["events"], "share": round(r["events"] / kept_rows, 4)}
            for r in rows]
