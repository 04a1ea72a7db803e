"""Benchmark: silver.events_sessionized before and after ``interest optimize``, on both engines.

    python bench/bench_optimize.py [--users 8500] [--workdir /tmp/interest-bench-optimize]
                                   [--engines delta-rs,delta-spark] [--repeats 3]

Builds (once, kept in WORKDIR) a generated store of ``--users`` users (~120 events each:
8,500 users ≈ 1 M events) through generate -> ingest -> sessionize on the delta-rs engine, then
for each engine copies that warehouse, and prints one table: the live file count of
silver.events_sessionized and three readers' times (best of ``--repeats``) before and after
compaction + Z-order by user_id (+ vacuum):

- Spark, one user's events (the engine's reader: delta-spark skips files by their min/max
  statistics; the delta-rs engine hands Spark every live file),
- Spark, a full scan (count and sum of price over all rows),
- delta-rs / DataFusion (the BI reader, no Spark), one user's events.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

TABLE = "silver.events_sessionized"


def _conf(workdir: str, warehouse: str, engine: str, users: int):
    from interest_lib.conf import load_config

    conf = load_config(overrides=[
        f"storage.warehouse={warehouse}", f"storage.raw_dir={workdir}/raw",
        f"storage.engine={engine}", f"generate.users={users}", "spark.driver_memory=4g",
        f"storage.optimize_tables={TABLE}", "storage.vacuum_retention_hours=0",
        "run.log_level=WARNING", "spark.master=local[2]",
    ])
    conf.storage.zorder_by = {TABLE: "user_id"}
    return conf


def build_store(spark, workdir: str, users: int) -> str:
    """The delta-rs warehouse with silver.events_sessionized (built once per workdir/users)."""
    from interest_lib.generate.job import run_generate
    from interest_lib.ingest import run_ingest
    from interest_lib.sessions import run_sessionize
    from interest_lib.storage import Tables

    base = os.path.join(workdir, f"base-{users}")
    done = os.path.join(base, "_built")
    if not os.path.exists(done):
        shutil.rmtree(base, ignore_errors=True)
        conf = _conf(workdir, base, "delta-rs", users)
        tables = Tables(spark, conf.storage)
        for step, fn in (("generate", run_generate), ("ingest", run_ingest), ("sessionize", run_sessionize)):
            start = time.perf_counter()
            fn(spark, conf, tables)
            print(f"  built {step} in {time.perf_counter() - start:.1f} s", flush=True)
        open(done, "w").close()
    return base


def best(fn, repeats: int) -> tuple[float, object]:
    """Best wall time of ``repeats`` runs of ``fn`` and its (last) result."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def measure(spark, tables, user: str, repeats: int) -> dict:
    """File count and the three readers' best times."""
    from deltalake import DeltaTable, QueryBuilder
    from pyspark.sql import functions as F

    path = tables.path(TABLE)
    one_user = lambda: tables.read(TABLE).filter(F.col("user_id") == user).count()  # noqa: E731
    scan = lambda: tables.read(TABLE).agg(F.count("*"), F.sum("price")).first()  # noqa: E731

    def bi_user():
        table = DeltaTable(path)
        return QueryBuilder().register("t", table).execute(
            f"SELECT count(*) AS n FROM t WHERE user_id = '{user}'").read_all().column(0)[0].as_py()

    t_user, n_user = best(one_user, repeats)
    t_scan, scanned = best(scan, repeats)
    t_bi, n_bi = best(bi_user, repeats)
    assert n_user == n_bi, (n_user, n_bi)
    return {"files": len(tables.live_files(TABLE)), "user": t_user, "scan": t_scan, "bi": t_bi,
            "rows": scanned[0], "user_rows": n_user}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=8500, help="generated users (~120 events each)")
    parser.add_argument("--workdir", default="/tmp/interest-bench-optimize")
    parser.add_argument("--engines", default="delta-rs,delta-spark")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from pyspark.sql import functions as F

    from interest_lib.logs import setup_logging
    from interest_lib.spark import get_spark
    from interest_lib.storage import Tables
    from interest_lib.storage.maintenance import optimize_tables

    setup_logging("WARNING")
    # The session loads the Delta jars (storage.engine=delta-spark): one JVM for both engines.
    spark = get_spark(_conf(args.workdir, "unused", "delta-spark", args.users))
    base = build_store(spark, args.workdir, args.users)
    results = []
    for engine in args.engines.split(","):
        warehouse = os.path.join(args.workdir, f"{engine}-{args.users}")
        shutil.rmtree(warehouse, ignore_errors=True)
        shutil.copytree(base, warehouse)
        conf = _conf(args.workdir, warehouse, engine, args.users)
        tables = Tables(spark, conf.storage)
        # a heavy user: the reader's answer is not trivially empty
        user = (tables.read(TABLE).groupBy("user_id").count().orderBy(F.desc("count"), "user_id")
                .first()["user_id"])
        before = measure(spark, tables, user, args.repeats)
        start = time.perf_counter()
        report = optimize_tables(tables, conf.storage)
        optimize_s = time.perf_counter() - start
        after = measure(spark, tables, user, args.repeats)
        assert after["rows"] == before["rows"] and after["user_rows"] == before["user_rows"]
        results.append((engine, before, after, optimize_s, report.tables[0].files_vacuumed))
        print(f"  {engine}: done ({report.summary()})", flush=True)

    rows = results[0][1]["rows"] if results else 0
    print(f"\n{TABLE}: {rows:,} events, {args.users:,} users; best of {args.repeats}; "
          "one user = the user with the most events")
    print("| engine | measure | before | after | before/after |")
    print("|---|---|---:|---:|---:|")
    for engine, before, after, optimize_s, vacuumed in results:
        print(f"| {engine} | live files | {before['files']:,} | {after['files']:,} | "
              f"{before['files'] / max(after['files'], 1):.1f}× |")
        for key, label in (("user", f"Spark: one user's events ({before['user_rows']} rows), s"),
                           ("scan", "Spark: full scan (count, sum price), s"),
                           ("bi", "delta-rs/DataFusion: one user's events, s")):
            print(f"| {engine} | {label} | {before[key]:.2f} | {after[key]:.2f} | "
                  f"{before[key] / after[key]:.2f}× |")
        print(f"| {engine} | optimize + Z-order + vacuum, s ({vacuumed:,} files vacuumed) | – | "
              f"{optimize_s:.1f} | – |")
    spark.stop()


if __name__ == "__main__":
    main()
