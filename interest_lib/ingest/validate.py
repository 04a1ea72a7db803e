"""Validation and type coercion of raw events: every rejected row gets the first failing reason.

All functions are ``DataFrame -> DataFrame`` and chain with ``df.transform``.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional, Sequence

from pyspark.sql import Column, DataFrame, functions as F

from interest_lib import schema as S
from interest_lib.ingest.readers import CORRUPT

# ISO-8601 date-time, optional fraction and zone; anything else (e.g. 'yesterday', which Spark's
# cast would accept as a special value) is malformed.
_ISO_TS = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
_EPOCH_MS = r"^\d{12,13}$"
_NUMBER = r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$"
# Characters that show nothing: whitespace and separators of any script, control and format
# characters (zero-width space U+200B, byte-order mark U+FEFF, joiners...). A user id made only
# of them is no identity.
_INVISIBLE = r"[\s\p{Z}\p{Cc}\p{Cf}]"
# Infinity / NaN as text; Spark's JSON reader turns a number beyond double range into "Infinity".
_NON_FINITE = r'(?i)^"?[+-]?(inf|infinity|nan)"?$'

#: Reasons a record is quarantined, in the order they are checked.
REASONS = {
    "invalid_utf8": "the record holds bytes that are not UTF-8 (or U+FFFD, which a decoder leaves for them)",
    "malformed_record": "not a valid record of the input format",
    "missing_event_id": "event_id is empty",
    "missing_user_id": "user_id is empty",
    "blank_user_id": "user_id holds only whitespace or invisible characters (e.g. U+200B, U+FEFF)",
    "unknown_event_type": "event_type is not one of " + ", ".join(S.EVENT_TYPES),
    "malformed_event_time": "event_time is not an ISO-8601 timestamp or epoch milliseconds",
    "event_time_in_future": "event_time is later than ingest time + ingest.max_future_skew_minutes",
    "event_time_too_old": "event_time is before ingest.min_event_date",
    "missing_category": "category_id is empty",
    "missing_item_id": "item_id is empty for an event type that needs an item",
    "non_finite_price": "price is infinite or NaN, or too large for a double (1e400)",
    "malformed_price": "price is not a number",
    "negative_price": "price is negative",
    "user_day_over_cap": "more than ingest.max_events_per_user_day valid events of one user on one UTC day "
                         "(a bot or a replayed feed), those already in bronze.events included; the earliest "
                         "of the day are kept",
    "late_event": "event_time is before the stream's watermark (the latest event time in bronze.events "
                  "minus stream.watermark_minutes): later than the stream waits for (interest stream only)",
}


def _blank(col: str) -> Column:
    return F.col(col).isNull() | (F.trim(F.col(col)) == "")


def invalid_utf8(fields: Sequence[str]) -> Column:
    """True when any of ``fields`` or the unparsed text holds invalid UTF-8 or U+FFFD (the
    replacement character a decoder such as the CSV reader's leaves for invalid bytes)."""
    joined = F.concat_ws("\u0001", *fields, CORRUPT)
    return ~F.is_valid_utf8(joined) | joined.contains("\ufffd")


def parse_event_time(col: str = S.EVENT_TIME) -> Column:
    """The raw string as a UTC timestamp: ISO-8601 or epoch milliseconds; null if malformed."""
    raw = F.trim(F.col(col))
    return (
        F.when(raw.rlike(_ISO_TS), raw.try_cast("timestamp"))
        .when(raw.rlike(_EPOCH_MS), F.timestamp_millis(raw.cast("long")))
    )


def with_parsed_fields(df: DataFrame) -> DataFrame:
    """Add typed ``_ts`` and ``_price`` columns parsed from the raw strings."""
    return df.withColumn("_ts", parse_event_time()).withColumn(
        "_price", F.when(F.col(S.PRICE).rlike(_NUMBER), F.trim(F.col(S.PRICE)).cast("double"))
    )


def with_reason(df: DataFrame, now: dt.datetime, max_future_skew_minutes: int,
                min_event_date: str, watermark: Optional[dt.datetime] = None) -> DataFrame:
    """Add ``reason``: the first failed check (see :data:`REASONS`), null for a valid event.
    ``watermark`` (streaming): an otherwise valid event before it is a ``late_event``."""
    latest = F.lit(now + dt.timedelta(minutes=max_future_skew_minutes)).cast("timestamp")
    etype = canonical(S.EVENT_TYPE)
    checks = [
        ("invalid_utf8", invalid_utf8(S.RAW_FIELDS)),
        ("malformed_record", F.col(CORRUPT).isNotNull()),
        ("missing_event_id", _blank(S.EVENT_ID)),
        ("missing_user_id", _blank(S.USER_ID)),
        ("blank_user_id", F.regexp_replace(S.USER_ID, _INVISIBLE, "") == ""),
        ("unknown_event_type", etype.isNull() | ~etype.isin(*S.EVENT_TYPES)),
        ("malformed_event_time", F.col("_ts").isNull()),
        ("event_time_in_future", F.col("_ts") > latest),
        ("event_time_too_old", F.col("_ts") < F.lit(min_event_date).cast("timestamp")),
        ("missing_category", _blank(S.CATEGORY_ID)),
        ("missing_item_id", ~etype.isin(*S.ITEMLESS_EVENT_TYPES) & _blank(S.ITEM_ID)),
        ("non_finite_price", F.col("_price").isin(float("inf"), float("-inf"))
         | F.trim(F.col(S.PRICE)).rlike(_NON_FINITE)),
        ("malformed_price", ~_blank(S.PRICE) & F.col("_price").isNull()),
        ("negative_price", F.col("_price") < 0),
    ]
    if watermark is not None:
        checks.append(("late_event", F.col("_ts") < F.lit(watermark).cast("timestamp")))
    reason = F.lit(None).cast("string")
    for name, failed in reversed(checks):
        reason = F.when(failed, F.lit(name)).otherwise(reason)
    return df.withColumn(S.REASON, reason)


def canonical(col: str) -> Column:
    """What bronze.events stores for the raw identifier column ``col`` (event_id, user_id,
    category_id, event_type): the trimmed text, event types also lower-cased. Validation checks,
    dedupe's choice of the copy to keep and the daily cap's user key read the same values."""
    value = F.trim(F.col(col))
    return F.lower(value) if col == S.EVENT_TYPE else value


def to_events(df: DataFrame, keep: Sequence[str] = ()) -> DataFrame:
    """Valid raw rows as canonical typed columns (before pseudonymisation and batch stamps);
    ``keep``: columns carried through as they are (dedupe's flag)."""
    def text(col: str) -> Column:
        return F.when(_blank(col), F.lit(None)).otherwise(F.trim(F.col(col)))

    return df.select(
        *[canonical(c).alias(c) for c in (S.EVENT_ID, S.USER_ID)],
        text(S.ITEM_ID).alias(S.ITEM_ID),
        canonical(S.CATEGORY_ID).alias(S.CATEGORY_ID),
        text(S.CATEGORY_PATH).alias(S.CATEGORY_PATH),
        canonical(S.EVENT_TYPE).alias(S.EVENT_TYPE),
        F.col("_ts").alias(S.EVENT_TIME),
        F.to_date("_ts").alias(S.EVENT_DATE),
        F.when(F.col(S.TEXT).isNull() | (F.col(S.TEXT) == ""), F.lit(None))
        .otherwise(F.col(S.TEXT)).alias(S.TEXT),
        F.col("_price").alias(S.PRICE),
        text(S.SOURCE).alias(S.SOURCE),
        S.SOURCE_FILE,
        *keep,
    )
