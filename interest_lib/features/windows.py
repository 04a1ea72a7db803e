"""Time windows and interest keys: which window(s) an event falls in, and at which category level.

Windows are aligned on a fixed origin (Monday 1970-01-05 UTC), so window ``k`` means the same
interval in every run and incremental runs line up: window k covers
``[origin + k * step, origin + k * step + length)``. With ``step == length`` windows tumble (each
event in one window); with ``step < length`` they slide (each event in ``length / step`` windows).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, functions as F

from interest_lib import schema as S

#: Window columns added to events and used as keys by every featurize table.
WINDOW = "window"
WINDOW_START = "window_start"
WINDOW_END = "window_end"
INTEREST = "interest"

ORIGIN = dt.datetime(1970, 1, 5)  # a Monday: weekly windows start on Mondays
ORIGIN_S = int((ORIGIN - dt.datetime(1970, 1, 1)).total_seconds())


def window_bounds(window: Column | str, window_days: int, step_days: int) -> tuple[Column, Column]:
    """(start, end) timestamps of window index ``window``."""
    k = F.col(window) if isinstance(window, str) else window
    start_s = F.lit(ORIGIN_S) + k * F.lit(step_days * 86400)
    return F.timestamp_seconds(start_s), F.timestamp_seconds(start_s + F.lit(window_days * 86400))


def window_index_col(time_col: str, step_days: int) -> Column:
    """Index of the (last) window starting at or before each row's ``time_col`` (Spark)."""
    return F.floor((F.unix_seconds(time_col) - F.lit(ORIGIN_S)) / F.lit(step_days * 86400)).cast("long")


def last_window_ended_col(time_col: str, window_days: int, step_days: int) -> Column:
    """Index of the last window that ends at or before each row's ``time_col`` (Spark): the
    window starting at or before ``time_col`` minus ``window_days``."""
    return F.floor((F.unix_seconds(time_col) - F.lit(ORIGIN_S + window_days * 86400))
                   / F.lit(step_days * 86400)).cast("long")


def window_index_of(ts: dt.datetime, step_days: int) -> int:
    """Index of the (last) window starting at or before ``ts`` (Python, for tests and cut-offs)."""
    return int(((ts - ORIGIN).total_seconds()) // (step_days * 86400))


def assign_windows(events: DataFrame, window_days: int, step_days: int,
                   time_col: str = S.EVENT_TIME) -> DataFrame:
    """Add ``window`` (index), ``window_start`` and ``window_end``; sliding windows repeat events.

    Args:
        events: rows with a UTC timestamp column ``time_col``.
        window_days: window length in days.
        step_days: days between window starts (<= window_days).

    Returns:
        ``events`` with one row per (event, window containing it).
    """
    last = window_index_col(time_col, step_days)
    per_event = -(-window_days // step_days)  # windows that can contain one instant
    start, end = window_bounds(WINDOW, window_days, step_days)
    if per_event == 1:
        return events.withColumn(WINDOW, last).withColumn(WINDOW_START, start).withColumn(WINDOW_END, end)
    first = last - F.lit(per_event - 1)
    return (
        events.withColumn(WINDOW, F.explode(F.sequence(first, last)))
        .withColumn(WINDOW_START, start).withColumn(WINDOW_END, end)
        .filter((F.col(time_col) >= F.col(WINDOW_START)) & (F.col(time_col) < F.col(WINDOW_END)))
    )


def interest_key(level: int) -> Column:
    """The category an event counts for: the leaf id at level 3, else the path's first levels."""
    if level >= 3:
        return F.col(S.CATEGORY_ID)
    parts = F.split(F.col(S.CATEGORY_PATH), "/")
    prefix = F.array_join(F.slice(parts, 1, level), "/")
    # Events whose path is missing keep the leaf id rather than vanishing from the profile.
    return F.when(F.col(S.CATEGORY_PATH).isNull(), F.col(S.CATEGORY_ID)).otherwise(prefix)


def same_time_order() -> Column:
    """The order among one user's events that share a timestamp (the items of one basket): a
    hash of the user and the event id. Such events are one set, so nothing about them (their
    category or item names, their lines' order in the file) may decide which of them comes first
    in a sequence or becomes a label; sorting on the category key instead made the label of a
    basket its alphabetically first category (Complete Journey: +87% NDCG@10 for a model that
    learned the alphabet). Deterministic, so reruns build identical sequences."""
    return F.xxhash64(F.col(S.USER_ID), F.col(S.EVENT_ID))
