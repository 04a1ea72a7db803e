"""Does the trip's context say which categories a household buys, beyond TIFU-KNN? Complete
Journey's validation period only (nothing after the test cut is scored).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/trip_context.py [--betas 0.05,0.1,0.2]

For each context (``gap``: days since the household's previous basket, <1.5 / <3.5 / <7.5 / longer
/ first basket; ``dow``: Mon-Thu / Fri / Sat / Sun; ``hour``: before 11 / 11-15 / 15-19 / later)
the household keeps a day-decayed (0.995) category count per context bucket (``BucketedDayCounts``,
the state of the learned ranker's ``hour_habit``); the score is TIFU-KNN
(the protocol's validation choice) + beta x the household's shares in the bucket of the basket
being predicted. Prints NDCG@10 overall and on the switch slice against TIFU-KNN alone.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from interest_lib.evaluate.cj_events import load_complete_journey_events  # noqa: E402
from interest_lib.evaluate.event_benchmark import validation_cut  # noqa: E402
from interest_lib.evaluate.event_protocol import encode_events, evaluate_model, make_targets, time_cut  # noqa: E402
from interest_lib.metrics import per_target_metrics  # noqa: E402
from interest_lib.models.event_baselines import DAY_NS, BucketedDayCounts, TifuKnn  # noqa: E402
from interest_lib.models.event_ranker import part_of_day  # noqa: E402

# TIFU-KNN as the protocol chooses it on Complete Journey's validation period (docs/event_protocol.md)
TIFU = dict(decay=0.995, unit="day", binary=False, prior=0.2, k=300, alpha=0.9)
BUCKETS = 5
GAP_EDGES_DAYS = np.array([1.5, 3.5, 7.5])


def context_bucket(kind: str, now, previous) -> np.ndarray:
    """Bucket 0..4 of baskets at times ``now`` whose household's previous basket was at
    ``previous`` (-1: none), for context ``kind`` (gap, dow or hour)."""
    now, previous = np.asarray(now, dtype=np.int64), np.asarray(previous, dtype=np.int64)
    if kind == "gap":
        return np.where(previous < 0, 4, np.searchsorted(GAP_EDGES_DAYS, np.maximum(now - previous, 0) / DAY_NS))
    if kind == "dow":
        dow = ((now // 10**9 // 86400) + 3) % 7  # 0 = Monday
        return np.select([dow <= 3, dow == 4, dow == 5], [0, 1, 2], 3)
    return part_of_day(now)  # the learned ranker's hour_habit buckets


class ContextTifu(TifuKnn):
    """TIFU-KNN + ``beta`` x the household's day-decayed category shares in the basket's context bucket."""

    name = "context_tifu"

    def __init__(self, kind: str, beta: float, **tifu):
        super().__init__(**tifu)
        self.kind, self.beta = kind, beta

    def _fit(self, user, category, ts):
        super()._fit(user, category, ts)
        order = np.lexsort((ts, user))
        u, t, c = user[order], ts[order], category[order]
        new_basket = np.r_[True, (u[1:] != u[:-1]) | (t[1:] != t[:-1])]
        starts = np.flatnonzero(new_basket)
        bu, bt = u[starts], t[starts]
        same_user = np.r_[False, bu[1:] == bu[:-1]]
        bucket = context_bucket(self.kind, bt, np.where(same_user, np.r_[-1, bt[:-1]], -1))
        self.habit = BucketedDayCounts(self.state.decay, BUCKETS)
        self.habit.fit(u, c, t, bucket[np.cumsum(new_basket) - 1], self.num_users, self.width)

    def _observe(self, users, categories, now):
        super()._observe(users, categories, now)
        for u in np.unique(users):
            bucket = int(context_bucket(self.kind, now, self.habit.ref[u]))
            self.habit.observe(u, categories[users == u], now, bucket)

    def scores(self, users, now):
        """TIFU-KNN's scores + beta x the shares of the context bucket this basket falls in."""
        users = np.asarray(users)
        bucket = context_bucket(self.kind, np.full(len(users), now), self.habit.ref[users])
        return super().scores(users, now) + self.beta * self.habit.shares(users, bucket)


def main(argv=None) -> int:
    """Score TIFU-KNN and each (context, beta) on the validation period; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--betas", default="0.05,0.1,0.2", help="comma-separated weights of the context term")
    parser.add_argument("--contexts", default="gap,dow,hour")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    log = encode_events(load_complete_journey_events())
    cut = time_cut(log.ts)
    targets = make_targets(log, validation_cut(log, cut), end=cut)
    switch = targets.is_switch
    ndcg = lambda model: per_target_metrics(evaluate_model(model, log, targets), (10,))["ndcg@10"]  # noqa: E731
    reference = ndcg(TifuKnn(**TIFU))
    print(f"validation period: {len(reference):,} targets, {int(switch.sum()):,} switch")
    print(f"{'context':8} {'beta':>5} {'ndcg@10 all':>12} {'vs TIFU':>8} {'switch':>8} {'vs TIFU':>8}")
    print(f"{'(TIFU)':8} {'':>5} {reference.mean():12.5f} {'':>8} {reference[switch].mean():8.5f}")
    for kind in args.contexts.split(","):
        for beta in (float(b) for b in args.betas.split(",")):
            g = ndcg(ContextTifu(kind, beta, **TIFU))
            print(f"{kind:8} {beta:5.2f} {g.mean():12.5f} {100 * (g.mean() / reference.mean() - 1):+7.2f}% "
                  f"{g[switch].mean():8.5f} {100 * (g[switch].mean() / reference[switch].mean() - 1):+7.2f}%")
    print(f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
