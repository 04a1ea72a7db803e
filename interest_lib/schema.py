"""Column names, event types and the canonical schemas, defined once for every job.

The canonical event (``bronze.events``) is one user action in the store:

======================  =========  ==========================================================
column                  type       meaning
======================  =========  ==========================================================
event_id                string     unique id of the event (duplicates are removed at ingest)
user_id                 string     pseudonymised user id (keyed HMAC-SHA256 of the raw id)
item_id                 string     catalogue item; null for ``search`` events
category_id             string     leaf category id of the item (or of the search)
category_path           string     ``/``-separated path from the root, e.g. ``sports/running/shoes``
event_type              string     one of :data:`EVENT_TYPES`
event_time              timestamp  when the event happened, UTC
event_date              date       UTC date of ``event_time`` (partition column)
text                    string     search query or review text, else null
price                   double     item price at the time of the event, else null
source                  string     channel the event came from (web, app, ...)
ingest_batch            long       monotonically increasing ingest batch number
ingested_at             timestamp  when the ingest job accepted the row
======================  =========  ==========================================================
"""

from __future__ import annotations

from pyspark.sql import types as T

# --- event columns -------------------------------------------------------------------------
EVENT_ID = "event_id"
USER_ID = "user_id"
ITEM_ID = "item_id"
CATEGORY_ID = "category_id"
CATEGORY_PATH = "category_path"
EVENT_TYPE = "event_type"
EVENT_TIME = "event_time"
EVENT_DATE = "event_date"
TEXT = "text"
PRICE = "price"
SOURCE = "source"
INGEST_BATCH = "ingest_batch"
INGESTED_AT = "ingested_at"

# --- session columns -----------------------------------------------------------------------
SESSION_ID = "session_id"
SESSION_START = "session_start"
SESSION_END = "session_end"
SESSION_DATE = "session_date"
DURATION_S = "duration_s"
N_EVENTS = "n_events"
CATEGORIES_VISITED = "categories_visited"
DOMINANT_CATEGORY = "dominant_category"
HAS_PURCHASE = "has_purchase"

# --- quarantine columns --------------------------------------------------------------------
RAW_RECORD = "raw_record"
RECORD_TYPE = "record_type"
REASON = "reason"
SOURCE_FILE = "source_file"

# --- item catalogue columns ----------------------------------------------------------------
TITLE = "title"
DESCRIPTION = "description"

#: Event types the platform emits, in funnel order (implicit -> explicit signals).
EVENT_TYPES = ("view", "click", "search", "favourite", "cart", "purchase", "review")

#: Event types that carry no item (the category is the searched one).
ITEMLESS_EVENT_TYPES = ("search",)

#: Raw fields of an item catalogue record.
RAW_ITEM_FIELDS = (ITEM_ID, TITLE, DESCRIPTION, CATEGORY_ID, CATEGORY_PATH, PRICE)

#: Raw fields every input record must provide (as strings); anything else is ignored.
RAW_FIELDS = (
    EVENT_ID, USER_ID, ITEM_ID, CATEGORY_ID, CATEGORY_PATH, EVENT_TYPE, EVENT_TIME, TEXT, PRICE,
    SOURCE,
)

#: Raw fields a CSV header or Parquet schema must provide (the others may be absent: null).
REQUIRED_RAW_FIELDS = (EVENT_ID, USER_ID, ITEM_ID, CATEGORY_ID, EVENT_TYPE, EVENT_TIME)

#: Raw item fields a CSV header or Parquet schema must provide.
REQUIRED_RAW_ITEM_FIELDS = (ITEM_ID, CATEGORY_ID, CATEGORY_PATH)

#: Raw input read as strings so that every malformed value can be quarantined with a reason.
RAW_EVENT_SCHEMA = T.StructType([T.StructField(name, T.StringType()) for name in RAW_FIELDS])

EVENT_SCHEMA = T.StructType([
    T.StructField(EVENT_ID, T.StringType(), False),
    T.StructField(USER_ID, T.StringType(), False),
    T.StructField(ITEM_ID, T.StringType()),
    T.StructField(CATEGORY_ID, T.StringType(), False),
    T.StructField(CATEGORY_PATH, T.StringType()),
    T.StructField(EVENT_TYPE, T.StringType(), False),
    T.StructField(EVENT_TIME, T.TimestampType(), False),
    T.StructField(EVENT_DATE, T.DateType(), False),
    T.StructField(TEXT, T.StringType()),
    T.StructField(PRICE, T.DoubleType()),
    T.StructField(SOURCE, T.StringType()),
    T.StructField(INGEST_BATCH, T.LongType(), False),
    T.StructField(INGESTED_AT, T.TimestampType(), False),
])

#: Rejected raw records (``bronze.events_quarantine``); record_type is ``event`` or ``item``.
QUARANTINE_SCHEMA = T.StructType([
    T.StructField(RECORD_TYPE, T.StringType(), False),
    T.StructField(RAW_RECORD, T.StringType()),
    T.StructField(REASON, T.StringType(), False),
    T.StructField(SOURCE_FILE, T.StringType()),
    T.StructField(INGEST_BATCH, T.LongType(), False),
    T.StructField(INGESTED_AT, T.TimestampType(), False),
])

ITEM_SCHEMA = T.StructType([
    T.StructField(ITEM_ID, T.StringType(), False),
    T.StructField(TITLE, T.StringType()),
    T.StructField(DESCRIPTION, T.StringType()),
    T.StructField(CATEGORY_ID, T.StringType(), False),
    T.StructField(CATEGORY_PATH, T.StringType(), False),
    T.StructField(PRICE, T.DoubleType()),
])

#: An event with its session (``silver.events_sessionized``).
SESSIONIZED_EVENT_SCHEMA = T.StructType(
    list(EVENT_SCHEMA.fields) + [T.StructField(SESSION_ID, T.StringType(), False)]
)

SESSION_SCHEMA = T.StructType([
    T.StructField(SESSION_ID, T.StringType(), False),
    T.StructField(USER_ID, T.StringType(), False),
    T.StructField(SESSION_START, T.TimestampType(), False),
    T.StructField(SESSION_END, T.TimestampType(), False),
    T.StructField(SESSION_DATE, T.DateType(), False),
    T.StructField(DURATION_S, T.LongType(), False),
    T.StructField(N_EVENTS, T.LongType(), False),
    *[T.StructField(f"n_{etype}", T.LongType(), False) for etype in EVENT_TYPES],
    T.StructField(CATEGORIES_VISITED, T.ArrayType(T.StringType(), False), False),
    T.StructField(DOMINANT_CATEGORY, T.StringType()),
    T.StructField(HAS_PURCHASE, T.BooleanType(), False),
])

#: Ground truth of every migration the generator planted (``ref.planted_migrations``).
PLANTED_MIGRATION_SCHEMA = T.StructType([
    T.StructField("raw_user_id", T.StringType(), False),
    T.StructField("migration_time", T.TimestampType(), False),
    T.StructField("from_category", T.StringType(), False),
    T.StructField("to_category", T.StringType(), False),
    T.StructField("kind", T.StringType(), False),
])
