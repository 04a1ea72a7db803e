"""How good can migration detection get on this data? The project's detector vs alternatives.

    python bench/detection_ceiling.py [WAREHOUSE]   (default ./warehouse, after `make run`)

Reads silver.user_interest_windows, silver.interest_migrations and ref.planted_migrations and
scores, with the same rule as ``interest featurize`` (a planted migration is found by a
detection of the same user within +-1 window), three detectors:

- ``project``: the rows of silver.interest_migrations (JS divergence + top change + swing);
- ``two-sample z``: the best of a grid of local tests: the share of the new top vs the old top
  in the 2-3 windows before vs the 2 windows from the change, with non-maximum suppression;
- ``offline segmentation``: the best of a grid of optimal piecewise-constant multinomial
  segmentations of each user's whole history (dynamic programming, penalty per change), which
  sees the future a streaming detector cannot.

Both alternatives are tuned on the truth itself, so their F1 is an optimistic ceiling for their
family. Also prints the project detector's F1 per user-activity band: how much evidence a user
leaves decides how well any detector can do. Pure numpy / pyarrow, no Spark.
"""

from __future__ import annotations

import collections
import itertools
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from interest_lib.conf import load_config  # noqa: E402
from interest_lib.features.detection_quality import detection_quality  # noqa: E402
from interest_lib.features.windows import ORIGIN  # noqa: E402
from interest_lib.ingest.pseudonymise import pseudonymise_py, resolve_key  # noqa: E402
from interest_lib.storage import catalog  # noqa: E402
from interest_lib.storage.arrow_snapshot import read_snapshot  # noqa: E402


def load(warehouse: str, step_days: int, key: bytes):
    """users: {user: [(window, n_sessions, {category: share})]}, planted: {user: [window]},
    detected: {user: [window]}."""
    w = read_snapshot(catalog.table_path(warehouse, catalog.SILVER_USER_INTEREST_WINDOWS)).to_pydict()
    users = collections.defaultdict(list)
    for u, win, ns, cats, shares in zip(w["user_id"], w["window"], w["n_sessions"],
                                        w["window_categories"], w["window_shares"]):
        users[u].append((win, ns, dict(zip(cats or [], shares or []))))
    for ws in users.values():
        ws.sort(key=lambda x: x[0])
    p = read_snapshot(catalog.table_path(warehouse, catalog.REF_PLANTED_MIGRATIONS)).to_pydict()
    origin = ORIGIN.replace(tzinfo=None)
    planted = collections.defaultdict(list)
    for raw, ts in zip(p["raw_user_id"], p["migration_time"]):
        ts = ts.replace(tzinfo=None)
        planted[pseudonymise_py(raw, key)].append(int((ts - origin).total_seconds() // (step_days * 86400)))
    d = read_snapshot(catalog.table_path(warehouse, catalog.SILVER_INTEREST_MIGRATIONS)).to_pydict()
    detected = collections.defaultdict(list)
    for u, win in zip(d["user_id"], d["window"]):
        detected[u].append(win)
    return users, planted, detected


def score(detected: dict, planted: dict, users) -> dict:
    """Precision, recall, F1 within +-1 window over ``users``: ``interest featurize``'s own rule
    (:func:`~interest_lib.features.detection_quality.detection_quality`)."""
    q = detection_quality([(u, w, w) for u in users for w in detected.get(u, [])],
                          [(u, p) for u in users for p in planted.get(u, [])])
    return {"precision": q.precision, "recall": q.recall, "f1": q.f1, "planted": q.planted, "detected": q.detected}


def z_test(ws, before=2, z_min=2.0, min_share=0.25):
    """Local two-sample test of the new top's share against the old top's (sessions as counts)."""
    cands = []
    for i in range(1, len(ws) - 1):
        b, a = collections.Counter(), collections.Counter()
        for _w, n, d in ws[max(0, i - before):i]:
            b.update({k: v * n for k, v in d.items()})
        for _w, n, d in ws[i:i + 2]:
            a.update({k: v * n for k, v in d.items()})
        if not a or not b:
            continue
        f, t = max(b, key=b.get), max(a, key=a.get)
        if f == t or a[t] / sum(a.values()) < min_share:
            continue
        nb, na = b[f] + b[t], a[f] + a[t]
        p = (b[t] + a[t]) / (nb + na)
        z = (a[t] / na - b[t] / nb) / math.sqrt(max(p * (1 - p), 1e-9) * (1 / nb + 1 / na))
        if z >= z_min:
            cands.append((ws[i][0], z))
    return [w for w, z in cands if all(z >= z2 for w2, z2 in cands if 0 < abs(w2 - w) <= 1 and not (z2 == z and w2 < w))]


def segmentation(ws, penalty=4.0, alpha=0.5):
    """Optimal segmentation of the whole history; a migration where the segment's top changes."""
    n = len(ws)
    if n < 2:
        return []
    cats = sorted({k for _w, _n, d in ws for k in d})
    idx = {c: j for j, c in enumerate(cats)}
    counts = np.zeros((n, len(cats)))
    for i, (_w, ns, d) in enumerate(ws):
        for k, v in d.items():
            counts[i, idx[k]] = v * ns
    cum = np.vstack([np.zeros(len(cats)), np.cumsum(counts, axis=0)])

    def cost(a, b):
        c = cum[b] - cum[a]
        return -(c * np.log((c + alpha) / (c.sum() + alpha * len(cats)))).sum()

    best, arg = [0.0] + [math.inf] * n, [0] * (n + 1)
    for b in range(1, n + 1):
        for a in range(b):
            v = best[a] + cost(a, b) + penalty
            if v < best[b]:
                best[b], arg[b] = v, a
    cuts, b = [], n
    while b > 0:
        cuts.append(b)
        b = arg[b]
    bounds = [0] + sorted(cuts)
    segs = list(zip(bounds, bounds[1:]))
    return [ws[a2][0] for (a1, b1), (a2, b2) in zip(segs, segs[1:])
            if np.argmax(cum[b1] - cum[a1]) != np.argmax(cum[b2] - cum[a2])]


def best_of(detector, grid, users, planted):
    results = []
    for params in grid:
        det = {u: detector(ws, *params) for u, ws in users.items()}
        results.append((score(det, planted, users), params))
    return max(results, key=lambda r: r[0]["f1"])


def main(warehouse: str = "warehouse") -> None:
    conf = load_config()
    users, planted, detected = load(warehouse, conf.features.step_days, resolve_key(conf))
    rows = [("project (silver.interest_migrations)", score(detected, planted, users), "")]
    s, p = best_of(z_test, itertools.product([2, 3], [1.5, 2.0, 2.5, 3.0], [0.25, 0.35]), users, planted)
    rows.append(("two-sample z, best of grid", s, f"before={p[0]} z>={p[1]} share>={p[2]}"))
    s, p = best_of(segmentation, itertools.product([2.0, 4.0, 8.0], [0.1, 0.5]), users, planted)
    rows.append(("offline segmentation, best of grid", s, f"penalty={p[0]} alpha={p[1]}"))
    print("| detector | precision | recall | F1 | detected / planted | parameters |")
    print("|---|---:|---:|---:|---:|---|")
    for name, r, params in rows:
        print(f"| {name} | {r['precision']:.3f} | {r['recall']:.3f} | **{r['f1']:.3f}** | "
              f"{r['detected']:,} / {r['planted']:,} | {params} |")
    sessions = {u: sum(n for _w, n, _d in ws) / max(1, len(ws)) for u, ws in users.items()}
    edges = np.quantile(list(sessions.values()), [0, 0.25, 0.5, 0.75, 0.9, 1.0])
    print("\n| sessions per active window | users | project F1 |")
    print("|---|---:|---:|")
    for lo, hi in zip(edges[:-1], edges[1:]):
        band = [u for u, v in sessions.items() if lo <= v <= hi]
        print(f"| {lo:.1f} - {hi:.1f} | {len(band):,} | {score(detected, planted, band)['f1']:.3f} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
    os._exit(0)  # deltalake 1.6 can abort at interpreter exit; the results are printed
