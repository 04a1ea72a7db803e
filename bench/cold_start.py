"""Cold start on Complete Journey: new households scored from their first 1-3 events (the
cold-start path of ``interest score``) against popularity, with user-clustered paired bootstrap
95% CIs.

    PYTHONPATH=. python bench/cold_start.py --warehouse /tmp/cj/warehouse [--boot 1000]

Reads a featurized warehouse (silver.events_sessionized, ref.items, ref.item_embeddings: built by
bench/real_data.py). Per household: the history is up to 3 events of its first basket (all
lines at its first timestamp; which 3 is chosen by a hash of the item id, never by the arbitrary
order of tied lines), the targets are the distinct categories of its next basket; popularity is
the category share of all events in the 28 days before the household's first event (the
platform as it stood when the user arrived). Ranking over every category; HR@10, NDCG@10.

Cohorts by arrival (first event): ``validation`` (arrived in [--val-from, --test-from)) chooses
the mixture weights and temperature from a small grid; ``test`` (arrived on or after
--test-from, default 2017-02-01) and ``test-period`` (arrived after the event protocol's 80th
percentile time cut: the users whose first event falls in the test period) are only scored
with the chosen setting.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

GRID = {"own": (0.05, 0.1, 0.2, 0.4), "text": (0.0, 0.2, 0.4, 0.8), "pop": (0.2, 0.4, 0.8),
        "temperature": (0.03, 0.1, 0.3)}


def load(warehouse: str):
    """(events with category ids, category keys, category vectors) from the warehouse."""
    from deltalake import DeltaTable

    from interest_lib.scoring.cold_start import category_vectors

    ev = DeltaTable(f"{warehouse}/silver/events_sessionized").to_pandas(
        columns=["user_id", "category_id", "item_id", "event_time"])
    keys = np.array([""] + sorted(ev["category_id"].dropna().unique()), dtype=object)
    index = {k: i for i, k in enumerate(keys) if i}
    ev["c"] = ev["category_id"].map(index).fillna(0).astype(np.int64)
    ev["ts"] = pd.to_datetime(ev["event_time"]).dt.tz_localize(None)
    items = DeltaTable(f"{warehouse}/ref/items").to_pandas(columns=["item_id", "category_id"])
    emb = DeltaTable(f"{warehouse}/ref/item_embeddings").to_pandas(columns=["item_id", "embedding"])
    joined = items.merge(emb, on="item_id")
    vectors = category_vectors(keys, joined["category_id"], np.stack(joined["embedding"].to_numpy()).astype(np.float64))
    return ev, keys, vectors


def cohort(ev: pd.DataFrame, keys: np.ndarray, history_events: int = 3):
    """Per household: arrival time, history category ids (<= history_events of the first basket),
    next-basket targets, and the 28-day popularity before arrival."""
    ev = ev.sort_values(["user_id", "ts"], kind="stable")
    baskets = ev.groupby(["user_id", "ts"], sort=True)
    first_two = ev[["user_id", "ts"]].drop_duplicates().groupby("user_id").head(2)
    rank = first_two.groupby("user_id").cumcount()
    first = first_two[rank == 0].set_index("user_id")["ts"]
    second = first_two[rank == 1].set_index("user_id")["ts"]
    users = second.index
    hist, targets = [], []
    for u in users:
        b0 = baskets.get_group((u, first[u]))
        h = b0.assign(h=pd.util.hash_pandas_object(b0["item_id"], index=False).to_numpy()).sort_values("h")
        hist.append(h["c"].to_numpy()[:history_events])
        targets.append(np.unique(baskets.get_group((u, second[u]))["c"].to_numpy()))
    # Popularity at each arrival: category counts of the 28 days before it (daily cumulative counts).
    day = ev["ts"].dt.floor("D")
    days = pd.date_range(day.min(), day.max() + pd.Timedelta(days=1), freq="D")
    counts = np.zeros((len(days), len(keys)))
    np.add.at(counts, (days.get_indexer(day), ev["c"].to_numpy()), 1.0)
    cum = np.vstack([np.zeros(len(keys)), counts.cumsum(0)])
    arrive = first[users]
    hi = days.get_indexer(arrive.dt.floor("D"))  # events of days before the arrival day
    lo = np.maximum(hi - 28, 0)
    pop = cum[hi] - cum[lo]
    return pd.DataFrame({"user": users, "arrival": arrive.to_numpy(), "hist": hist, "targets": targets}), pop


def evaluate(frame: pd.DataFrame, pop: np.ndarray, vectors, setting) -> dict:
    """Per-target HR@10 / NDCG@10 (and their users) of popularity and of the cold-start mixture."""
    from interest_lib.metrics import per_target_metrics, target_ranks
    from interest_lib.scoring.cold_start import cold_start_scores

    rows = {"users": [], "pop": {"hr@10": [], "ndcg@10": []}, "cold": {"hr@10": [], "ndcg@10": []}}
    own, text, popw, temp = setting
    for i, r in enumerate(frame.itertuples()):
        t = r.targets[r.targets > 0]
        if not len(t):
            continue
        p = pop[i].copy()
        p[0] = 0
        cold = cold_start_scores([r.hist], vectors, p, own, text, popw, temp)[0]
        for name, s in (("pop", p), ("cold", cold)):
            m = per_target_metrics(target_ranks(np.repeat(s[None], len(t), 0), t))
            for k in ("hr@10", "ndcg@10"):
                rows[name][k].append(m[k])
        rows["users"].append(np.full(len(t), r.user))
    return {"users": np.concatenate(rows["users"]),
            **{n: {k: np.concatenate(v) for k, v in rows[n].items()} for n in ("pop", "cold")}}


def main(argv=None) -> int:
    """Choose the setting on the validation arrivals, print the test cohorts' table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--val-from", default="2017-01-08")
    parser.add_argument("--test-from", default="2017-02-01")
    parser.add_argument("--boot", type=int, default=1000)
    args = parser.parse_args(argv)
    from interest_lib.evaluate.event_protocol import ClusterBootstrap

    start = time.perf_counter()
    ev, keys, vectors = load(args.warehouse)
    frame, pop = cohort(ev, keys)
    cut = ev["ts"].quantile(0.8)
    val = (frame["arrival"] >= pd.Timestamp(args.val_from)) & (frame["arrival"] < pd.Timestamp(args.test_from))
    cohorts = {"test": frame["arrival"] >= pd.Timestamp(args.test_from), "test-period": frame["arrival"] >= cut}
    print(f"Complete Journey: {len(ev):,} events, {len(keys) - 1} categories; {len(frame):,} households with two "
          f"baskets; validation arrivals {int(val.sum())}, test {int(cohorts['test'].sum())}, "
          f"test period (first event >= {cut}) {int(cohorts['test-period'].sum())} ({time.perf_counter() - start:.0f}s)")
    best, best_val = None, -1.0
    for setting in itertools.product(*GRID.values()):
        res = evaluate(frame[val].reset_index(drop=True), pop[val.to_numpy()], vectors, setting)
        score = res["cold"]["ndcg@10"].mean()
        if score > best_val:
            best, best_val = setting, score
    print("setting chosen on validation (own, text, popularity, temperature): "
          f"{best}, validation NDCG@10 {best_val:.4f}")
    print(f"\n{'cohort':<12}{'users':>7}{'targets':>9}{'pop HR@10':>11}{'cold HR@10':>12}{'pop NDCG@10':>13}"
          f"{'cold NDCG@10':>14}  NDCG@10 gain [95% CI]")
    for name, mask in cohorts.items():
        res = evaluate(frame[mask].reset_index(drop=True), pop[mask.to_numpy()], vectors, best)
        boot = ClusterBootstrap.draw(res["users"], args.boot)
        base = res["pop"]["ndcg@10"].mean()
        _, lo, hi = boot.ci(res["cold"]["ndcg@10"], res["pop"]["ndcg@10"])
        gain = res["cold"]["ndcg@10"].mean() / base - 1
        print(f"{name:<12}{len(np.unique(res['users'])):>7}{len(res['users']):>9}{res['pop']['hr@10'].mean():>11.4f}"
              f"{res['cold']['hr@10'].mean():>12.4f}{base:>13.4f}{res['cold']['ndcg@10'].mean():>14.4f}"
              f"  {gain:+.1%} [{lo / base:+.1%}, {hi / base:+.1%}]")
    # Which part carries the gain: the same cohort without the text term.
    mask = cohorts["test"]
    no_text = evaluate(frame[mask].reset_index(drop=True), pop[mask.to_numpy()], None, best)
    with_text = evaluate(frame[mask].reset_index(drop=True), pop[mask.to_numpy()], vectors, best)
    boot = ClusterBootstrap.draw(with_text["users"], args.boot)
    base = no_text["cold"]["ndcg@10"].mean()
    d, lo, hi = boot.ci(with_text["cold"]["ndcg@10"], no_text["cold"]["ndcg@10"])
    print(f"\ntext term on the test cohort: NDCG@10 {with_text['cold']['ndcg@10'].mean():.4f} with vs {base:.4f} "
          f"without -> {d / base:+.1%} [95% CI {lo / base:+.1%}, {hi / base:+.1%}]")
    print(f"seconds: {time.perf_counter() - start:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
