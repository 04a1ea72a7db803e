"""The single-machine baseline a user might pick instead of Spark: DuckDB on the same files.

Does the same work as ``interest ingest`` + ``interest sessionize`` on the same raw JSON lines:
parse and validate (the same reasons, in the same order), drop duplicate event ids, write the
accepted events and the quarantine as Parquet, the events partitioned by date as in
bronze.events; then sessionize (30-minute gap; the 240-minute cap applied as fixed slices from
the gap-session start, a close approximation of the project's causal cap, which affects <1% of
sessions) and write both outputs Spark writes, date-partitioned like silver: the events with
their session id, and the sessions with their features. With ``--featurize`` it
also does featurize's profile build (:func:`featurize_profiles`: the per-user window aggregation,
decay and sparse shares of silver.user_interest_windows). Run as its own process so its peak
memory is its own: ``python bench/duckdb_baseline.py RAW_EVENTS_DIR OUT_DIR THREADS [--featurize]``;
prints JSON timings.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

import duckdb

EVENT_TYPES = ("view", "click", "search", "favourite", "cart", "purchase", "review")


#: featurize's defaults (conf/base.yml ``features``): weekly tumbling windows on the Monday
#: 1970-01-05 origin, leaf categories, these weights, decay 0.5 (horizon 6 windows), min share 0.01.
WEIGHTS = {"view": 1.0, "click": 2.0, "search": 1.5, "favourite": 3.0, "cart": 4.0, "purchase": 6.0, "review": 5.0}
ORIGIN_S, STEP_S, DECAY, HORIZON, MIN_SHARE, TOP_K = 345600, 604800, 0.5, 6, 0.01, 5


def featurize_profiles(con, sessionized_pq: str, out: str) -> None:
    """The profile build of featurize (silver.user_interest_windows without text vectors): per
    user and active window the activity counts and distinct sessions, the window's interest
    shares and the decayed profile (sparse, shares >= min share renormalised, sorted), top
    categories, entropy and windows since the previous active window; written as Parquet."""
    cases = " ".join(f"WHEN '{k}' THEN {v}" for k, v in WEIGHTS.items())
    type_counts = ", ".join(f"count(*) FILTER (WHERE event_type = '{t}') AS n_{t}" for t in EVENT_TYPES)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE ev AS
        SELECT user_id, session_id, event_type, category_id AS interest,
               floor((epoch(event_time) - {ORIGIN_S}) / {STEP_S})::BIGINT AS w,
               CASE event_type {cases} ELSE 0 END AS weight
        FROM read_parquet('{sessionized_pq}/**/*.parquet', hive_partitioning=true)
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE activity AS
        SELECT user_id, w, count(*) AS n_events, count(DISTINCT session_id) AS n_sessions, {type_counts}
        FROM ev GROUP BY user_id, w
    """)
    con.execute("CREATE OR REPLACE TEMP TABLE raw AS SELECT user_id, w, interest, sum(weight) AS raw FROM ev GROUP BY ALL")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE decayed AS
        SELECT r.user_id, r.w + l.lag AS w, r.interest, sum(r.raw * pow({DECAY}, l.lag)) AS decayed
        FROM raw r CROSS JOIN range(0, {HORIZON + 1}) l(lag)
        JOIN activity a ON a.user_id = r.user_id AND a.w = r.w + l.lag
        GROUP BY ALL
    """)

    def dist(table: str, value: str, cats: str, shares: str) -> str:
        return f"""
          SELECT user_id, w, list(interest ORDER BY s DESC, interest) AS {cats},
                 list(s / total ORDER BY s DESC, interest) AS {shares}
          FROM (SELECT *, sum(s) OVER (PARTITION BY user_id, w) AS total FROM (
                  SELECT user_id, w, interest, {value} / sum({value}) OVER (PARTITION BY user_id, w) AS s
                  FROM {table} WHERE {value} > 0) WHERE s >= {MIN_SHARE})
          GROUP BY user_id, w"""
    con.execute(f"""
        COPY (
          SELECT a.*, to_timestamp({ORIGIN_S} + a.w * {STEP_S}) AS window_start,
                 to_timestamp({ORIGIN_S} + (a.w + 1) * {STEP_S}) AS window_end,
                 a.w - lag(a.w) OVER (PARTITION BY a.user_id ORDER BY a.w) AS windows_since_prev,
                 wd.window_categories, wd.window_shares, pd.profile_categories, pd.profile_shares,
                 pd.profile_categories[1:{TOP_K}] AS top_categories,
                 list_sum(list_transform(pd.profile_shares, lambda p: -p * log2(p))) AS entropy
          FROM activity a
          LEFT JOIN ({dist('raw', 'raw', 'window_categories', 'window_shares')}) wd USING (user_id, w)
          LEFT JOIN ({dist('decayed', 'decayed', 'profile_categories', 'profile_shares')}) pd USING (user_id, w)
        ) TO '{out}' (FORMAT parquet, PER_THREAD_OUTPUT true)
    """)


def main(raw_dir: str, out_dir: str, threads: int, featurize: bool = False) -> dict:
    """Run ingest + sessionize (+ featurize's profile build) in DuckDB; return timings and counts."""
    os.makedirs(out_dir, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    types = ", ".join(f"'{t}'" for t in EVENT_TYPES)
    glob = os.path.join(raw_dir, "**", "*.json")
    events_pq = os.path.join(out_dir, "events")
    sessionized_pq = os.path.join(out_dir, "events_sessionized")
    sessions_pq = os.path.join(out_dir, "sessions")
    timings = {}

    start = time.perf_counter()
    con.execute(f"""
        CREATE TEMP TABLE raw AS
        SELECT *, filename AS source_file FROM read_json('{glob}', format='newline_delimited',
            columns={{event_id:'VARCHAR', user_id:'VARCHAR', item_id:'VARCHAR', category_id:'VARCHAR',
                      category_path:'VARCHAR', event_type:'VARCHAR', event_time:'VARCHAR', text:'VARCHAR',
                      price:'VARCHAR', source:'VARCHAR'}},
            ignore_errors=true, filename=true)
    """)
    con.execute(f"""
        CREATE TEMP TABLE checked AS
        SELECT *, CASE
            WHEN coalesce(trim(event_id), '') = '' THEN 'missing_event_id'
            WHEN coalesce(trim(user_id), '') = '' THEN 'missing_user_id'
            WHEN lower(trim(event_type)) NOT IN ({types}) OR event_type IS NULL THEN 'unknown_event_type'
            WHEN ts IS NULL THEN 'malformed_event_time'
            WHEN ts > now()::TIMESTAMP + INTERVAL 60 MINUTE THEN 'event_time_in_future'
            WHEN ts < TIMESTAMP '2000-01-01' THEN 'event_time_too_old'
            WHEN coalesce(trim(category_id), '') = '' THEN 'missing_category'
            WHEN lower(trim(event_type)) <> 'search' AND coalesce(trim(item_id), '') = '' THEN 'missing_item_id'
            WHEN coalesce(trim(price), '') <> '' AND p IS NULL THEN 'malformed_price'
            WHEN p < 0 THEN 'negative_price'
          END AS reason
        FROM (SELECT *, try_cast(try_strptime(trim(event_time), ['%Y-%m-%dT%H:%M:%SZ', '%Y-%m-%dT%H:%M:%S.%fZ', '%Y-%m-%d %H:%M:%S'])
                         AS TIMESTAMP) AS ts,
                     try_cast(trim(price) AS DOUBLE) AS p FROM raw)
    """)
    con.execute(f"""
        COPY (
          SELECT event_id, sha256(user_id) AS user_id, item_id, category_id, category_path,
                 lower(trim(event_type)) AS event_type, ts AS event_time, ts::DATE AS event_date,
                 text, p AS price, source
          FROM checked WHERE reason IS NULL
          QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY source_file, ts) = 1
        ) TO '{events_pq}' (FORMAT parquet, PARTITION_BY (event_date))
    """)
    counts = con.execute("SELECT count(*), count(reason) FROM checked").fetchone()
    con.execute(f"COPY (SELECT * FROM checked WHERE reason IS NOT NULL) TO '{out_dir}/quarantine.parquet' (FORMAT parquet)")
    timings["ingest_s"] = time.perf_counter() - start

    start = time.perf_counter()
    type_counts = ", ".join(f"count(*) FILTER (WHERE event_type = '{t}') AS n_{t}" for t in EVENT_TYPES)
    con.execute(f"""
        CREATE TEMP TABLE sessionized AS
        WITH g AS (
          SELECT *, sum(CASE WHEN prev IS NULL OR event_time - prev > INTERVAL 30 MINUTE THEN 1 ELSE 0 END)
                      OVER (PARTITION BY user_id ORDER BY event_time, event_id) AS gap_session
          FROM (SELECT *, lag(event_time) OVER (PARTITION BY user_id ORDER BY event_time, event_id) AS prev
                FROM read_parquet('{events_pq}/**/*.parquet', hive_partitioning=true))
        )
        SELECT * EXCLUDE (prev, gap_session), user_id || '|' || gap_session || '|' ||
               floor(epoch(event_time - min(event_time) OVER (PARTITION BY user_id, gap_session)) / 14400)::BIGINT
               AS session_id
        FROM g
    """)
    con.execute(f"COPY sessionized TO '{sessionized_pq}' (FORMAT parquet, PARTITION_BY (event_date))")
    con.execute(f"""
        COPY (
          SELECT *, session_start::DATE AS session_date FROM (
            SELECT session_id, any_value(user_id) AS user_id, min(event_time) AS session_start,
                   max(event_time) AS session_end, count(*) AS n_events, {type_counts},
                   list_sort(list(DISTINCT category_id)) AS categories_visited,
                   mode(category_id) AS dominant_category,
                   count(*) FILTER (WHERE event_type = 'purchase') > 0 AS has_purchase
            FROM sessionized GROUP BY session_id)
        ) TO '{sessions_pq}' (FORMAT parquet, PARTITION_BY (session_date))
    """)
    timings["sessionize_s"] = time.perf_counter() - start
    if featurize:
        start = time.perf_counter()
        featurize_profiles(con, sessionized_pq, os.path.join(out_dir, "user_interest_windows"))
        timings["featurize_s"] = time.perf_counter() - start
    n_sessions = con.execute(f"SELECT count(*) FROM read_parquet('{sessions_pq}/**/*.parquet')").fetchone()[0]
    n_events = con.execute(f"SELECT count(*) FROM read_parquet('{events_pq}/**/*.parquet')").fetchone()[0]
    return {
        **timings, "rows_in": counts[0], "quarantined": counts[1], "accepted": n_events,
        "sessions": n_sessions,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), "--featurize" in sys.argv[4:])))
