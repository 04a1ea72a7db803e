"""Micro-benchmark: migration detection, former Spark SQL array functions vs the per-row
comparison (``compare_windows`` in a pandas UDF), on generated profiles with many categories
per user (like Complete Journey: ~300 categories, users with 50+ categories).

    PYTHONPATH=. python bench/migration_detection.py [--users 20] [--weeks 8] [--categories 300]
        [--per-user 60] [--events 150] [--min-share 0.005] [--skip-old]

Prints the profile shape (window rows, categories per profile), then old and new seconds, the
ratio, and whether both gave the same migrations. Both sides write their rows to Spark's noop
sink (every column computed) after the profiles are cached, so only detection is timed. The old
side is slow (seconds per window row at 50+ categories): keep the sizes small, or --skip-old.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

MONDAY = dt.datetime(2026, 1, 5)


def generated_events(spark, users: int, weeks: int, categories: int, per_user: int, events: int, seed: int = 0):
    """Sessionized events: each user buys from ``per_user`` of ``categories``, 40% of the events
    on two focus categories that change now and then (migrations), ``events`` per active week."""
    from interest_lib import schema as S

    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        cats = rng.choice(categories, size=per_user, replace=False)
        focus = rng.choice(cats, size=2, replace=False)
        for w in range(weeks):
            if rng.random() < 0.3:
                focus = rng.choice(cats, size=2, replace=False)  # the interest moves
            if rng.random() < 0.1:
                continue  # an inactive week
            n = int(rng.integers(events // 2, events * 3 // 2))
            picks = np.where(rng.random(n) < 0.4, rng.choice(focus, size=n), rng.choice(cats, size=n))
            for c in picks:
                ts = MONDAY + dt.timedelta(weeks=w, days=int(rng.integers(7)), minutes=int(rng.integers(1440)))
                rows.append((f"e{len(rows):08d}", f"u{u:05d}", f"i{c}", f"c{c:04d}", f"d/c{c:04d}/t", "purchase",
                             ts, ts.date(), None, None, "store", 0, MONDAY, f"s{u}_{w}"))
    return spark.createDataFrame(rows, S.SESSIONIZED_EVENT_SCHEMA)


def timed(df) -> float:
    start = time.perf_counter()
    df.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - start


def main(argv=None) -> int:
    """Generate profiles, time both detectors, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--categories", type=int, default=300)
    parser.add_argument("--per-user", type=int, default=60, help="categories each user buys from")
    parser.add_argument("--events", type=int, default=150, help="mean events per active week")
    parser.add_argument("--min-share", type=float, default=0.005,
                        help="features.min_share (the pipeline's 0.01 caps a profile at 100 categories)")
    parser.add_argument("--skip-old", action="store_true", help="time only the new implementation")
    args = parser.parse_args(argv)

    from pyspark.sql import functions as F

    from interest_lib.conf import load_config
    from interest_lib.features.migrations import detect_migrations
    from interest_lib.features.profiles import PROFILE_CATEGORIES, build_profiles
    from interest_lib.spark import get_spark
    from tests.spark.migrations_sql_oracle import detect_migrations_sql

    conf = load_config(overrides=["spark.master=local[2]", "spark.shuffle_partitions=4", "spark.driver_memory=3g",
                                  f"features.min_share={args.min_share}"])
    spark = get_spark(conf)
    profiles = build_profiles(generated_events(spark, args.users, args.weeks, args.categories, args.per_user,
                                               args.events), conf.features).cache()
    rows, mean_k, max_k = profiles.agg(F.count(F.lit(1)), F.avg(F.size(PROFILE_CATEGORIES)),
                                       F.max(F.size(PROFILE_CATEGORIES))).first()
    print(f"profiles: {rows:,} window rows of {args.users} users; categories per profile mean {mean_k:.1f}, "
          f"max {max_k} (min_share {conf.features.min_share})", flush=True)
    active = conf.stages.active_share
    new_df = detect_migrations(profiles, conf.migration, active)
    timed(new_df)  # warm-up: JIT and Python workers
    new_s = timed(new_df)
    new_rows = sorted(tuple(r) for r in new_df.drop("divergence").collect())
    print(f"new (compare_windows in a pandas UDF): {new_s:8.1f} s, {len(new_rows):,} migrations", flush=True)
    if args.skip_old:
        return 0
    old_df = detect_migrations_sql(profiles, conf.migration, active)
    old_s = timed(old_df)
    same = sorted(tuple(r) for r in old_df.drop("divergence").collect()) == new_rows
    print(f"old (Spark SQL array functions):       {old_s:8.1f} s")
    print(f"per window row: old {old_s / rows * 1e3:.1f} ms, new {new_s / rows * 1e3:.2f} ms")
    print(f"ratio old / new: {old_s / new_s:.1f}x; same migrations: {same}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
