"""Benchmark: featurize in Spark vs DuckDB doing the same per-user window aggregation.

    python bench/bench_featurize.py WAREHOUSE [--threads 2] [--repeats 3] [--set KEY=VALUE ...]

WAREHOUSE must hold silver.events_sessionized (run ``interest run`` or the foundation bench
first). Prints, in one run: Spark's per-user window aggregation (interest weights per user,
window and category, plus activity counts), the same aggregation in DuckDB on the same Parquet
files, Spark's whole profile build (decay, sparse shares), item embeddings per second, and peak
memory of each process. The aggregation runs ``--repeats`` times on each side: the table shows
the first (cold: Spark's JIT and DuckDB's file cache not yet warm) and the best run (warm, as
inside a featurize job, where it is one query among many in the same JVM).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

WEIGHTS = {"view": 1.0, "click": 2.0, "search": 1.5, "favourite": 3.0, "cart": 4.0, "purchase": 6.0, "review": 5.0}


def duckdb_side(files: list[str], threads: int, repeats: int) -> dict:
    """Per-user window aggregation in DuckDB; returns seconds per run and rows."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    cases = " ".join(f"WHEN '{k}' THEN {v}" for k, v in WEIGHTS.items())
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        rows = con.execute(f"""
            SELECT count(*), sum(weight), sum(n) FROM (
              SELECT user_id, floor((epoch(event_time) - 345600) / 604800)::BIGINT AS w, category_id,
                     sum(CASE event_type {cases} ELSE 0 END) AS weight, count(*) AS n
              FROM read_parquet({files!r}) GROUP BY ALL)
        """).fetchone()[0]
        runs.append(time.perf_counter() - start)
    return {"runs": runs, "rows": rows,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def spark_side(warehouse: str, repeats: int, overrides: list[str]) -> dict:
    """Spark: the same aggregation, the full profile build, and item embeddings."""
    from pyspark.sql import functions as F

    from interest_lib.conf import load_config
    from interest_lib.features.profiles import build_profiles, weighted_window_events
    from interest_lib.features.windows import INTEREST, WINDOW
    from interest_lib.logs import setup_logging
    from interest_lib.spark import get_spark
    from interest_lib.storage import Tables

    setup_logging("WARNING")
    conf = load_config(overrides=[f"storage.warehouse={warehouse}", "spark.driver_memory=8g", *overrides])
    spark = get_spark(conf)
    tables = Tables(spark, conf.storage)
    events = tables.read("silver.events_sessionized")
    n = events.count()
    out = {"events": n, "files": [os.path.join(tables.path("silver.events_sessionized"), p)
                                  for p in tables.engine.live_files(tables.path("silver.events_sessionized"))]}
    agg = weighted_window_events(events, conf.features).groupBy("user_id", WINDOW, INTEREST).agg(
        F.sum("weight").alias("w"), F.count(F.lit(1)).alias("n"))
    out["agg_runs"] = []
    for _ in range(repeats):
        start = time.perf_counter()
        # The noop sink computes every column (a count() would let Spark prune the work away).
        agg.write.format("noop").mode("overwrite").save()
        out["agg_runs"].append(time.perf_counter() - start)
    out["agg_rows"] = agg.count()
    start = time.perf_counter()
    build_profiles(events, conf.features).write.format("noop").mode("overwrite").save()
    out["profiles_s"] = time.perf_counter() - start
    out["profile_rows"] = build_profiles(events, conf.features).count()
    if tables.exists("ref.items"):
        from interest_lib.features.embeddings import embed_texts_df, item_text

        items = tables.read("ref.items").select("item_id", item_text().alias("t"))
        start = time.perf_counter()
        embed_texts_df(items, "item_id", "t", conf.embeddings).write.format("noop").mode("overwrite").save()
        out["items_embedded"] = items.count()
        out["embed_s"] = time.perf_counter() - start
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    spark.stop()
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("warehouse")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeats", type=int, default=3, help="runs of the aggregation on each side")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="configuration override for the Spark side (repeatable), e.g. spark.shuffle_partitions=4")
    parser.add_argument("--side", choices=["both", "spark", "duckdb"], default="both", help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side == "spark":
        print("RESULT " + json.dumps(spark_side(args.warehouse, args.repeats, args.set)))
        return
    if args.side == "duckdb":
        print("RESULT " + json.dumps(duckdb_side(json.loads(args.files), args.threads, args.repeats)))
        return

    def run(extra):
        proc = subprocess.run([sys.executable, __file__, args.warehouse, *extra], capture_output=True, text=True)
        if proc.returncode:
            sys.exit(proc.stderr[-4000:])
        return json.loads([l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1][7:])

    s = run(["--side", "spark", "--repeats", str(args.repeats), *[f"--set={kv}" for kv in args.set]])
    d = run(["--side", "duckdb", "--files", json.dumps(s["files"]), "--threads", str(args.threads),
             "--repeats", str(args.repeats)])
    n = s["events"]
    print("| step | Spark s | Spark events/s | DuckDB s | DuckDB events/s | Spark/DuckDB |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, pick in (("first run, cold", lambda r: r[0]), (f"best of {args.repeats}, warm", min)):
        sa, da = pick(s["agg_runs"]), pick(d["runs"])
        print(f"| per-user window aggregation ({s['agg_rows']:,} rows), {label} | {sa:.2f} | {n / sa:,.0f} | "
              f"{da:.2f} | {n / da:,.0f} | **{sa / da:.2f}×** |")
    print(f"| full profile build (decay, sparse shares; {s['profile_rows']:,} user-windows) | {s['profiles_s']:.1f} | "
          f"{n / s['profiles_s']:,.0f} | – | – | – |")
    if "embed_s" in s:
        print(f"| item embeddings (CPU, {s['items_embedded']:,} items) | {s['embed_s']:.1f} | "
              f"{s['items_embedded'] / s['embed_s']:,.0f} items/s | – | – | – |")
    print(f"\nPeak RSS: Spark driver {s['peak_rss_mb']:,.0f} MB (JVM not included), DuckDB {d['peak_rss_mb']:,.0f} MB; "
          f"{n:,} events.")


if __name__ == "__main__":
    main()
