"""The pipeline's trained migration model (the Transformer by default) on the event-level protocol.

    PYTHONPATH=. python bench/pipeline_event_protocol.py --warehouse W --store RUNS
        [--run RUN_DIR] [--period test|validation] [--boot 1000]

The event-level protocol (docs/event_protocol.md) scores every target basket from the user's
events with an earlier timestamp. Here each target basket (user, time) becomes one row of model
inputs cut at that very time (:func:`interest_lib.features.sequences.build_inputs_at`: the last
events strictly before it, the windows complete by then), the run's model ranks all categories,
and the table sets it beside the protocol's baselines (settings chosen on the validation period),
slices all / switch / new, with user-clustered paired bootstrap CIs against the best baseline.

The model must not have seen the period's labels: its training table's validation and test split
must start at or before the period's cut. ``interest run`` splits off only the last week, so train
for this with a longer test split, e.g. on Complete Journey::

    PYTHONPATH=. python bench/real_data.py --work /tmp/cj --set sequences.test_days=77
    PYTHONPATH=. python bench/pipeline_event_protocol.py --warehouse /tmp/cj/warehouse --store /tmp/cj/runs

The script stops with the ``test_days`` needed when the run was trained on later labels.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

INPUT_COLUMNS = ("ev_category", "ev_item", "ev_type", "ev_interval", "ev_text", "win_category", "win_share")


def needed_test_days(last_event: pd.Timestamp, cut: pd.Timestamp, step_days: int, validation_days: int) -> int:
    """The smallest ``sequences.test_days`` (in whole steps) whose test split starts at or before ``cut``."""
    from interest_lib.features.sequences import split_bounds

    days = step_days
    while split_bounds(last_event.to_pydatetime(), step_days, validation_days, days)[1] > cut.to_pydatetime():
        days += step_days
    return days


def check_unseen(lineage: dict, last_event: pd.Timestamp, cut: pd.Timestamp) -> None:
    """Stop (SystemExit) when the run's training or validation labels reach past ``cut``."""
    from interest_lib.features.sequences import split_bounds

    seq, step = lineage["conf"]["sequences"], lineage["contract"]["step_days"]
    _, test_start = split_bounds(last_event.to_pydatetime(), step, seq["validation_days"], seq["test_days"])
    if test_start > cut.to_pydatetime():
        days = needed_test_days(last_event, cut, step, seq["validation_days"])
        raise SystemExit(f"run {lineage['run_id']} trained on labels up to {test_start:%Y-%m-%d}, after the "
                         f"protocol's cut {cut}: featurize and train again with --set sequences.test_days={days}")


def model_scores(spark, conf, tables, log, targets, model_path: str) -> np.ndarray:
    """``[baskets, C+1]`` scores of the run's model at every target basket's time."""
    from pyspark.sql import functions as F

    from interest_lib import schema as S
    from interest_lib.features.sequences import build_inputs_at
    from interest_lib.models.inference import load_trained, predict_arrays
    from interest_lib.storage.catalog import REF_VOCAB, SILVER_EVENTS_SESSIONIZED, SILVER_USER_INTEREST_WINDOWS

    rows = pd.DataFrame({S.USER_ID: log.users[targets.basket_user], "_us": targets.basket_ts // 1000,
                         "basket": np.arange(len(targets.basket_ts))})
    cutoffs = spark.createDataFrame(rows).withColumn("cutoff", F.timestamp_micros("_us")).drop("_us")
    inputs = build_inputs_at(tables.read(SILVER_EVENTS_SESSIONIZED), tables.read(SILVER_USER_INTEREST_WINDOWS),
                             tables.read(REF_VOCAB), conf, cutoffs)
    pdf = inputs.select("basket", *INPUT_COLUMNS).toPandas().sort_values("basket")
    if len(pdf) != len(rows):
        raise SystemExit(f"{len(rows) - len(pdf):,} of {len(rows):,} target baskets got no model inputs")
    arrays = {c: np.stack(pdf[c].to_numpy()) for c in INPUT_COLUMNS}
    vocab = tables.read(REF_VOCAB).filter(F.col("kind") == "category").select("key", "idx").toPandas()
    model, _ = load_trained(model_path, "cpu")
    probs = predict_arrays(model, arrays)["next_probs"]
    column = {key: i + 1 for i, key in enumerate(log.categories)}  # the protocol's category ids
    scores = np.full((len(pdf), log.num_categories + 1), -np.inf)
    for key, idx in zip(vocab["key"], vocab["idx"]):
        if key in column:
            scores[:, column[key]] = probs[:, idx]
    return scores


def main(argv=None) -> int:
    """Score the period's targets with the run's model; print the protocol's table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", required=True, help="the warehouse the run was trained from")
    parser.add_argument("--store", required=True, help="the run store (train.store) holding latest-migration.json")
    parser.add_argument("--run", help="a run folder instead of the store's latest migration run")
    parser.add_argument("--period", choices=("test", "validation"), default="test")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples (users)")
    args = parser.parse_args(argv)

    from interest_lib.conf import load_config
    from interest_lib.evaluate.event_benchmark import run_event_protocol, validation_cut, warehouse_events
    from interest_lib.evaluate.event_protocol import encode_events, format_table, protocol_table, target_ranks_of
    from interest_lib.event_stream import time_cut
    from interest_lib.spark import get_spark
    from interest_lib.storage import Tables

    run = args.run or os.path.join(args.store, json.load(open(os.path.join(args.store, "latest-migration.json")))["run_id"])
    lineage = json.load(open(os.path.join(run, "lineage.json")))
    log = encode_events(warehouse_events(args.warehouse))
    cut = time_cut(log.ts)
    period_cut = validation_cut(log, cut) if args.period == "validation" else cut
    check_unseen(lineage, pd.Timestamp(int(log.ts[-1])), pd.Timestamp(period_cut))
    # The protocol's own targets and baselines (chosen on validation); its table, baselines only
    # (one resample), is rebuilt below with the model beside them.
    res = run_event_protocol(log, n_boot=1, log_line=lambda s: None, period=args.period)
    targets = res.targets
    print(f"{args.period} period after {pd.Timestamp(period_cut)}: {len(targets):,} targets in "
          f"{len(targets.basket_ts):,} baskets; run {lineage['run_id']} ({lineage['model']}, sequences.test_days "
          f"{lineage['conf']['sequences']['test_days']})", flush=True)

    contract = lineage["contract"]
    conf = load_config(overrides=[
        f"storage.warehouse={args.warehouse}", "spark.extra.spark.ui.showConsoleProgress=false",
        *(f"features.{k}={contract[k]}" for k in ("top_k", "window_days", "step_days", "category_level")),
        *(f"sequences.{k}={contract[k]}" for k in ("max_events", "max_windows"))])
    start = time.perf_counter()
    spark = get_spark(conf)
    try:
        scores = model_scores(spark, conf, Tables(spark, conf.storage), log, targets, os.path.join(run, "model.pt"))
    finally:
        spark.stop()
    print(f"model scored in {time.perf_counter() - start:.0f}s", flush=True)
    ranks = {**res.ranks, lineage["model"]: target_ranks_of(scores, targets)}
    table = protocol_table(ranks, targets, reference=res.best, n_boot=args.boot)
    print(f"best baseline (chosen on validation): {res.chosen[res.best].label()}")
    print(format_table(table, res.best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
