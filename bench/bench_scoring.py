"""Benchmark: scoring users through the pandas UDF vs the same code in-process on one big batch.

    python bench/bench_scoring.py [--warehouse ./warehouse] [--store ./runs] [--copies 10]

Needs a warehouse with featurized tables and finished training runs (``make run``). The scoring
inputs of every user are replicated ``--copies`` times (distinct user ids) so the run is long
enough to time. Prints, in one run: rows/s of ``mapInPandas`` scoring (both models, top-K,
forecast, recommendations) over the Spark partitions, rows/s of the same function applied
in-process to all rows as one batch (the limit), their ratio (target, issue 18: UDF >= 90% of in-process),
and the peak RSS of each Python worker after scoring.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))


def _probe(batches):
    """One row per Python worker process: its pid and peak RSS so far."""
    import pandas as pd

    for _ in batches:
        pass
    yield pd.DataFrame({"pid": [os.getpid()], "peak_rss_mb": [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default="./warehouse")
    parser.add_argument("--store", default="./runs")
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="A.B=C",
                        help="configuration override (e.g. score.device=cuda), repeatable")
    parser.add_argument("--conf-file", default=None, help="extra YAML applied after the overlay")
    args = parser.parse_args()

    import torch
    from pyspark.sql import functions as F

    from interest_lib.conf import load_config
    from interest_lib.features.sequences import build_scoring_inputs
    from interest_lib.logs import setup_logging
    from interest_lib.scoring.job import UDF_SCHEMA, category_keys, load_predictors, default_as_of, score_partitions
    from interest_lib.spark import get_spark
    from interest_lib.storage import Tables
    from interest_lib.storage.catalog import REF_VOCAB, SILVER_EVENTS_SESSIONIZED, SILVER_USER_INTEREST_WINDOWS

    setup_logging("WARNING")
    conf = load_config(conf_file=args.conf_file, overrides=[
        f"storage.warehouse={args.warehouse}", f"train.store={args.store}", *args.overrides])
    spark = get_spark(conf)
    tables = Tables(spark, conf.storage)
    events = tables.read(SILVER_EVENTS_SESSIONIZED)
    as_of = default_as_of(events.agg(F.max("event_time")).first()[0], conf)
    inputs = build_scoring_inputs(events, tables.read(SILVER_USER_INTEREST_WINDOWS), tables.read(REF_VOCAB), conf, as_of)
    copies = spark.range(args.copies).withColumnRenamed("id", "_copy")
    inputs = (inputs.crossJoin(copies).withColumn("user_id", F.concat_ws("-", "user_id", "_copy")).drop("_copy")
              .repartition(spark.sparkContext.defaultParallelism * 2).localCheckpoint())
    rows = inputs.count()
    migration, evolution = load_predictors(conf, tables)
    keys = category_keys(tables)
    s = conf.score
    settings = (keys, s.top_k, s.forecast_k, s.recommendations, s.explore_share, s.batch_size, s.device, conf.features.top_k)

    broadcast = spark.sparkContext.broadcast((migration, evolution))
    fn = score_partitions(broadcast, *settings)
    inputs.mapInPandas(fn, UDF_SCHEMA).limit(1).count()  # warm the Python workers and their models
    start = time.perf_counter()
    scored = inputs.mapInPandas(fn, UDF_SCHEMA).agg(F.count("*"), F.sum("p_switch")).first()
    udf_seconds = time.perf_counter() - start
    assert scored[0] == rows
    workers = spark.range(spark.sparkContext.defaultParallelism * 4).repartition(spark.sparkContext.defaultParallelism * 4) \
        .mapInPandas(_probe, "pid long, peak_rss_mb double").distinct().collect()

    pdf = inputs.toPandas()
    torch.set_num_threads(os.cpu_count() or 1)
    local = score_partitions(SimpleNamespace(value=(migration, evolution)), *settings)
    next(iter(local(iter([pdf.head(256)]))))  # load the models in this process first
    start = time.perf_counter()
    out = next(iter(local(iter([pdf]))))
    local_seconds = time.perf_counter() - start
    assert len(out) == rows
    driver_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    udf_rate, local_rate = rows / udf_seconds, rows / local_seconds
    from interest_lib.models.inference import pick_device

    device = pick_device(conf.score.device)
    print(f"\nscoring benchmark: {rows:,} users ({args.copies} copies), models {migration.name} + {evolution.name}, "
          f"{os.cpu_count()} cores, torch {torch.__version__} on {device}, Arrow batch {conf.spark.arrow_batch_size}")
    print(f"{'measure':<44}{'value':>14}  {'unit':<10}{'ratio':>8}")
    print(f"{'in-process, one batch (baseline)':<44}{local_rate:>14,.0f}  {'rows/s':<10}{1.0:>8.2f}")
    print(f"{'mapInPandas UDF over Spark partitions':<44}{udf_rate:>14,.0f}  {'rows/s':<10}{udf_rate / local_rate:>8.2f}")
    print(f"{'target: UDF / in-process >= 0.90':<44}{'MET' if udf_rate >= 0.9 * local_rate else 'NOT MET':>14}")
    for w in sorted(workers, key=lambda r: r.pid):
        print(f"{'peak RSS, Python worker pid ' + str(w.pid):<44}{w.peak_rss_mb:>14,.0f}  {'MiB':<10}")
    print(f"{'peak RSS, driver (in-process run, incl. pandas copy)':<44}{driver_rss:>14,.0f}  {'MiB':<10}")


if __name__ == "__main__":
    main()
