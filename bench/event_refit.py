"""What reusing a kept event-ranker fit costs and saves (``score.event_refit_days``): on Complete
Journey's validation period, the learned ranker fitted fresh at the validation cut (what a
scoring run without a kept fit does) against its network kept from a fit made 0, 7 or 14 days
earlier and restored at the cut (what a run within ``score.event_refit_days`` does: the state
rebuilt from every event before the cut, the network's categories mapped by name).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/event_refit.py [--ages 0,7,14] [--boot 200]

Printed: NDCG@10 overall and on switches with the ratio to the fresh fit and the difference's
user-clustered bootstrap 95% CI, and the seconds until the model stands at the cut with their
ratio. The switch weight is fixed at 1.1 (the weight the protocol chooses on Complete Journey)
so that every row trains once; nothing after the test cut is read.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from interest_lib.evaluate.cj_events import load_complete_journey_events  # noqa: E402
from interest_lib.evaluate.event_benchmark import validation_cut  # noqa: E402
from interest_lib.evaluate.event_protocol import (  # noqa: E402
    ClusterBootstrap, encode_events, evaluate_model, make_targets, time_cut,
)
from interest_lib.metrics import per_target_metrics  # noqa: E402
from interest_lib.models.event_ranker import LearnedRanker, RankerParams  # noqa: E402

DAY_NS = 86400 * 10**9


class Timed:
    """A protocol model whose ``fit`` is ``make(log, n)``, timed (the rest delegates)."""

    def __init__(self, make):
        self.make, self.seconds = make, 0.0

    def fit(self, log, n):
        start = time.perf_counter()
        self.model = self.make(log, n)
        self.seconds = time.perf_counter() - start
        return self

    def scores(self, users, now):
        return self.model.scores(users, now)

    def observe(self, users, categories, now):
        self.model.observe(users, categories, now)


def main(argv=None) -> int:
    """Fit, keep, restore, score the validation period; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ages", default="0,7,14", help="days between the kept fit and the cut")
    parser.add_argument("--boot", type=int, default=200, help="bootstrap resamples (users)")
    parser.add_argument("--switch-weight", type=float, default=1.1)
    args = parser.parse_args(argv)
    params = RankerParams(switch_weight=args.switch_weight, threads=1)
    quiet = lambda line: None  # noqa: E731

    events = load_complete_journey_events()
    events = events.sort_values("ts", kind="stable").reset_index(drop=True)
    log = encode_events(events)
    vcut = validation_cut(log, time_cut(log.ts))
    targets = make_targets(log, vcut, end=time_cut(log.ts))
    print(f"Complete Journey: {len(log):,} events; validation period {pd.Timestamp(vcut)} .. "
          f"{pd.Timestamp(time_cut(log.ts))}, {len(targets):,} targets", flush=True)

    rows = []
    fresh = Timed(lambda lg, n: LearnedRanker(params, log_line=quiet).fit(lg, n))
    ranks = {"fresh fit at the cut": evaluate_model(fresh, log, targets)}
    seconds = {"fresh fit at the cut": fresh.seconds}
    print(f"fresh fit: {fresh.seconds:.0f} s", flush=True)
    for age in (int(a) for a in args.ages.split(",")):
        if age == 0:
            network, categories = fresh.model.network(), log.categories
        else:  # a fit made `age` days earlier, on the events before then only (its own encoding)
            old = encode_events(events[events["ts"] < pd.Timestamp(vcut - age * DAY_NS)])
            network, categories = LearnedRanker(params, log_line=quiet).fit(old, len(old)).network(), old.categories
        restored = Timed(lambda lg, n, net=network, cats=categories:
                         LearnedRanker(params, log_line=quiet).restore(net, cats, lg, n))
        name = f"kept fit {age} days old, restored at the cut"
        ranks[name] = evaluate_model(restored, log, targets)
        seconds[name] = restored.seconds
        print(f"{name}: {restored.seconds:.0f} s", flush=True)

    base = "fresh fit at the cut"
    per = {k: per_target_metrics(r, (10,))["ndcg@10"] for k, r in ranks.items()}
    masks = {"all": np.ones(len(targets), dtype=bool), "switch": targets.slice_mask("switch")}
    boots = {s: ClusterBootstrap.draw(targets.user[m], args.boot) for s, m in masks.items()}
    print("\n| model at the validation cut | NDCG@10 all | ratio | diff [95% CI] | switch | ratio | diff [95% CI] "
          "| seconds to stand at the cut | ratio |")
    print("|---|---:|---:|---|---:|---:|---|---:|---:|")
    for name in ranks:
        cells = []
        for s, m in masks.items():
            value, ref = per[name][m].mean(), per[base][m].mean()
            d, lo, hi = boots[s].ci(per[name][m], per[base][m])
            cells += [f"{value:.5f}", f"{value / ref:.4f}", f"{d:+.5f} [{lo:+.5f}, {hi:+.5f}]"]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {seconds[name]:.0f} | {seconds[name] / seconds[base]:.3f} |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
