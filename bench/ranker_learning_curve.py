"""The learned ranker's learning curve over households on Complete Journey's validation period:
the ranker fitted on the events before the validation cut of a hash-chosen share of the
households, its network restored on every household at the cut (``LearnedRanker.restore``,
categories by name) and scored on every validation target, beside TIFU-KNN at the setting the
protocol chooses for that period.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/ranker_learning_curve.py [--shares 0.25,0.5,1]
        [--variants "switch_weight=1.1;switch_weight=1.1,category_identity=0"] [--seed 0] [--boot 200]

Each variant is a ``key=value,...`` list of RankerParams fields (``threads=1`` is added); a fixed
``switch_weight`` makes every row train once. Printed per variant and share: NDCG@10 overall and
on switches, each with its ratio to TIFU-KNN and the difference's user-clustered bootstrap 95%
CI, and the fit's seconds. Nothing after the validation period (the test cut) is read.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from event_refit import Timed  # noqa: E402  (a protocol model made by a factory: here, a restore)

from interest_lib.evaluate.cj_events import load_complete_journey_events  # noqa: E402
from interest_lib.evaluate.event_benchmark import ranker_params, validation_cut  # noqa: E402
from interest_lib.evaluate.event_protocol import (  # noqa: E402
    ClusterBootstrap, encode_events, evaluate_model, make_targets, time_cut,
)
from interest_lib.metrics import per_target_metrics  # noqa: E402
from interest_lib.models.event_baselines import TifuKnn  # noqa: E402
from interest_lib.models.event_ranker import LearnedRanker  # noqa: E402

#: TIFU-KNN as ``bench/real_data_protocol.py --period validation`` chooses it on Complete Journey
#: (the best baseline of the validation period, chosen before its cut)
TIFU_AT_VALIDATION = dict(unit="day", decay=0.995, binary=False, prior=0.2, k=300, alpha=0.9)


def household_share(user_ids: pd.Series) -> pd.Series:
    """A stable number in [0, 1) per household (sha256 of its id): ``share < f`` picks a fraction
    ``f`` of the households, each smaller pick inside every larger one."""
    return user_ids.astype(str).map(lambda u: int(hashlib.sha256(u.encode()).hexdigest()[:8], 16) / 16**8)


def main(argv=None) -> int:
    """Fit per variant and share, restore at the validation cut, score, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", default="0.25,0.5,1", help="households' shares the ranker learns from")
    parser.add_argument("--variants", default="switch_weight=1.1", help="';'-separated RankerParams settings")
    parser.add_argument("--seed", type=int, default=0, help="the ranker's seed")
    parser.add_argument("--boot", type=int, default=200, help="bootstrap resamples (users)")
    args = parser.parse_args(argv)

    events = load_complete_journey_events().sort_values("ts", kind="stable").reset_index(drop=True)
    log = encode_events(events)
    cut = time_cut(log.ts)
    vcut = validation_cut(log, cut)
    targets = make_targets(log, vcut, end=cut)
    before = events[events["ts"] <= pd.Timestamp(vcut)]
    share = household_share(before["user_id"])
    masks = {"all": np.ones(len(targets), dtype=bool), "switch": targets.slice_mask("switch")}
    boots = {s: ClusterBootstrap.draw(targets.user[m], args.boot) for s, m in masks.items()}
    print(f"Complete Journey validation period {pd.Timestamp(vcut)} .. {pd.Timestamp(cut)}: "
          f"{len(targets):,} targets, {int(masks['switch'].sum()):,} switch", flush=True)
    reference = per_target_metrics(evaluate_model(TifuKnn(**TIFU_AT_VALIDATION), log, targets), (10,))["ndcg@10"]

    rows = []
    for variant in args.variants.split(";"):
        params = ranker_params(",".join(filter(None, [variant, f"threads=1,seed={args.seed}"])))
        for fraction in (float(f) for f in args.shares.split(",")):
            part = encode_events(before[share < fraction])
            start = time.perf_counter()
            network = LearnedRanker(params, log_line=lambda line: None).fit(part, len(part)).network()
            seconds = time.perf_counter() - start
            restored = Timed(lambda lg, n, net=network, cats=part.categories, params=params:
                             LearnedRanker(params, log_line=lambda line: None).restore(net, cats, lg, n))
            ndcg = per_target_metrics(evaluate_model(restored, log, targets), (10,))["ndcg@10"]
            cells = []
            for s, m in masks.items():
                value, ref = ndcg[m].mean(), reference[m].mean()
                d, lo, hi = boots[s].ci(ndcg[m], reference[m])
                cells += [f"{value:.5f}", f"{value / ref:.4f}", f"{d:+.5f} [{lo:+.5f}, {hi:+.5f}]"]
            rows.append(f"| {variant or 'defaults'} | {fraction:g} ({part.num_users:,}) | " + " | ".join(cells)
                        + f" | {seconds:.0f} |")
            print(rows[-1], flush=True)
    print(f"\nTIFU-KNN ({', '.join(f'{k}={v}' for k, v in TIFU_AT_VALIDATION.items())}): "
          f"NDCG@10 {reference.mean():.5f} all, {reference[masks['switch']].mean():.5f} switch")
    print("| ranker settings | households (users) | NDCG@10 all | ratio to TIFU-KNN | diff [95% CI] | switch "
          "| ratio to TIFU-KNN | diff [95% CI] | fit seconds |")
    print("|---|---|---:|---:|---|---:|---:|---|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
