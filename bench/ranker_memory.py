"""The learned ranker's memory on a wide catalogue: peak RSS, time and quality with the replayed
baskets' features capped (``RankerParams.max_train_gb``) against the same run uncapped.

    .venv/bin/python bench/ranker_memory.py [--users 1000] [--categories 2000] [--baskets 40] \\
        [--epochs 2] [--caps 0,4,1]

A synthetic event log, fixed seed: each user buys from 30 favourite categories (Dirichlet 0.5
weights, 80% of the items) and from the Zipf-shaped catalogue (20%), 1-8 items per basket,
``--baskets`` baskets per user over a year. The ranker is fitted at the protocol's cut (80th
percentile of event times) and scores the period after it, once per cap, each run in a fresh
process (its own peak RSS): cap 0 = no cap (the baseline of the ratios). The features of one
replayed basket take ``(categories + 1) x 29 x 4`` bytes, so on Complete Journey (303
categories) 63,257 replayed baskets are 2.1 GiB, under the default cap of 4; a catalogue of
2,000 categories reaches it with 18,000 baskets.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DAY_NS = 86_400 * 10**9


def synthetic_log(users: int, categories: int, baskets: int, seed: int = 0):
    """An :class:`EventLog` of ``users`` x ``baskets`` baskets over ``categories`` categories."""
    from interest_lib.event_stream import EventLog

    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, categories + 1) ** 0.8
    pop /= pop.sum()
    user, cat, ts = [], [], []
    for u in range(users):
        fav = rng.choice(categories, size=30, replace=False, p=pop) + 1
        weights = rng.dirichlet(np.full(30, 0.5))
        days = np.sort(rng.choice(360, size=baskets)) * DAY_NS + rng.integers(8, 20, size=baskets) * 3600 * 10**9 + u
        for t in days:
            k = int(rng.integers(1, 9))
            picks = np.where(rng.random(k) < 0.8, rng.choice(fav, size=k, p=weights), rng.choice(categories, size=k, p=pop) + 1)
            for c in np.unique(picks):
                user.append(u), cat.append(c), ts.append(t)
    user, cat, ts = np.array(user), np.array(cat), np.array(ts, dtype=np.int64)
    order = np.lexsort((cat, user, ts))
    return EventLog(user[order], cat[order], ts[order], np.arange(users).astype(str),
                    np.array([f"c{i}" for i in range(categories)]))


def one_run(args) -> dict:
    """Fit and score once with ``args.cap`` (0: uncapped); the measures as a dict."""
    from interest_lib.evaluate.event_protocol import evaluate_model
    from interest_lib.evaluate.metrics import metrics_from_ranks
    from interest_lib.event_stream import make_targets, time_cut
    from interest_lib.models.event_ranker import LearnedRanker, RankerParams

    log = synthetic_log(args.users, args.categories, args.baskets)
    targets = make_targets(log, time_cut(log.ts, 0.8))
    lines = []
    params = RankerParams(threads=1, epochs=args.epochs, max_train_gb=args.cap)
    start = time.perf_counter()
    ranks = evaluate_model(LearnedRanker(params, log_line=lines.append), log, targets)
    replayed = next(int(s.split()[1].replace(",", "")) for s in lines if "baskets replayed" in s)
    return {"events": len(log), "replayed": replayed, "seconds": time.perf_counter() - start,
            "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "features_gib": replayed * (args.categories + 1) * 29 * 4 / 2**30,
            "ndcg": metrics_from_ranks(ranks, (10,))["ndcg@10"], "targets": len(targets)}


def main(argv=None) -> int:
    """Run each cap in its own process and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--categories", type=int, default=2000)
    parser.add_argument("--baskets", type=int, default=40, help="baskets per user")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--caps", default="0,4,1", help="max_train_gb values, comma-separated (0 = no cap)")
    parser.add_argument("--cap", type=float, help=argparse.SUPPRESS)  # one run, in a child process
    args = parser.parse_args(argv)
    if args.cap is not None:
        print(json.dumps(one_run(args)))
        return 0
    rows = []
    for cap in [float(c) for c in args.caps.split(",")]:
        cmd = [sys.executable, os.path.abspath(__file__), "--users", str(args.users), "--categories",
               str(args.categories), "--baskets", str(args.baskets), "--epochs", str(args.epochs), "--cap", str(cap)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append((cap, json.loads(out.strip().splitlines()[-1])))
        print(f"cap {cap:g}: {rows[-1][1]}", flush=True)
    base = rows[0][1]
    print(f"\n{base['events']:,} events, {args.users:,} users, {args.categories:,} categories, "
          f"{base['targets']:,} test targets; ratios against the first row")
    print("| max_train_gb | baskets replayed | their features GiB | peak RSS GiB | ratio | seconds | ratio | NDCG@10 | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cap, r in rows:
        print(f"| {cap:g}{' (no cap)' if cap == 0 else ''} | {r['replayed']:,} | {r['features_gib']:.2f} | "
              f"{r['peak_gib']:.2f} | {r['peak_gib'] / base['peak_gib']:.2f} | {r['seconds']:.0f} | "
              f"{r['seconds'] / base['seconds']:.2f} | {r['ndcg']:.4f} | {r['ndcg'] / base['ndcg']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
