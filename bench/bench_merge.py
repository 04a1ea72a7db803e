"""Benchmark: a MERGE of one day's rows into a table partitioned by date, keyed with and without
the partition column.

    python bench/bench_merge.py [--days 60,365] [--rows-per-day 2000] [--batch 2000] [--engine delta-rs] [--repeat 3]

For each history length: a table of ``days`` date partitions (one file each, as a daily job
writes), then ``--repeat`` MERGEs of ``--batch`` rows of the last day (half updates, half new
keys), once keyed by ``id`` alone (the baseline: any file may hold a match, so every file is
listed and scanned) and once by ``(id, day)`` (the same rows match, since the day is a function
of the id; the MERGE looks only in the partitions the source holds). Each variant merges into
its own copy of the table. Prints median seconds per MERGE, the ratio, and checks that both
variants leave the same rows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))


def _table(spark, days: int, rows_per_day: int):
    from pyspark.sql import functions as F

    return (spark.range(days * rows_per_day)
            .select(F.col("id"), F.date_add(F.lit("2026-01-01").cast("date"), (F.col("id") / rows_per_day).cast("int")).alias("day"),
                    (F.col("id") % 97).cast("double").alias("value"))
            .repartition("day"))


def _batch(spark, days: int, rows_per_day: int, batch: int, round_: int):
    from pyspark.sql import functions as F

    first_of_last_day = (days - 1) * rows_per_day
    # half updates of the last day's ids, half new ids (after every existing one)
    ids = [first_of_last_day + i for i in range(batch // 2)] + \
          [days * rows_per_day + round_ * batch + i for i in range(batch - batch // 2)]
    return (spark.createDataFrame([(i,) for i in ids], "id long")
            .select("id", F.date_add(F.lit("2026-01-01").cast("date"), F.lit(days - 1)).alias("day"),
                    F.lit(float(round_ + 1000)).alias("value")))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", default="60,365", help="history lengths (date partitions), comma-separated")
    parser.add_argument("--rows-per-day", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--engine", default="delta-rs", choices=("delta-rs", "delta-spark"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", default="")
    args = parser.parse_args(argv)

    from interest_lib.conf import load_config
    from interest_lib.spark import get_spark
    from interest_lib.storage import Tables

    work = args.workdir or tempfile.mkdtemp(prefix="bench-merge-")
    conf = load_config(overrides=[f"storage.warehouse={work}/warehouse", f"storage.engine={args.engine}",
                                  "spark.shuffle_partitions=4", "storage.writer_lock=false"])
    spark = get_spark(conf)
    spark.sparkContext.setLogLevel("ERROR")
    tables = Tables(spark, conf.storage)
    results = []
    for days in [int(d) for d in args.days.split(",")]:
        base = f"b.base_{days}"
        tables.write(_table(spark, days, args.rows_per_day), base, mode="overwrite", partition_by=["day"])
        files = len(tables.live_files(base))
        seconds, contents = {}, {}
        for variant, keys in (("id", ["id"]), ("id, day", ["id", "day"])):
            name = f"b.{'pruned' if 'day' in keys else 'full'}_{days}"
            shutil.rmtree(tables.path(name), ignore_errors=True)
            shutil.copytree(tables.path(base), tables.path(name))
            times = []
            for r in range(args.repeat):
                source = _batch(spark, days, args.rows_per_day, args.batch, r).cache()
                source.count()
                t = time.perf_counter()
                tables.merge(source, name, keys=keys, partition_by=["day"])
                times.append(time.perf_counter() - t)
                source.unpersist()
            seconds[variant] = statistics.median(times)
            contents[variant] = tables.read(name).groupBy().agg({"value": "sum", "id": "count"}).first()
        same = contents["id"] == contents["id, day"]
        results.append((days, files, seconds["id"], seconds["id, day"], same))
        print(f"{days} days done", flush=True)

    print(f"\nMERGE of {args.batch:,} rows of one day ({args.engine}, {os.cpu_count()} cores, median of "
          f"{args.repeat}; load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())})")
    print(f"{'days':>6} {'files':>6} {'keys id s':>10} {'keys id, day s':>15} {'ratio':>6}  same rows")
    for days, files, full, pruned, same in results:
        print(f"{days:>6} {files:>6} {full:>10.2f} {pruned:>15.2f} {full / pruned:>5.1f}x  {'yes' if same else 'NO'}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r[-1] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
