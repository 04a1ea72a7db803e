"""How much can what lies outside a household's own history add to TIFU-KNN on Complete Journey?
An oracle bound for exogenous signals, and the data set's own marketing tables. Validation period
only (nothing after the test cut is scored).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/exogenous_ceiling.py

Promotions, weekly mailers, in-store displays, holidays and the weather act on everyone who shops
in a store (or anywhere) that week. Whatever such a signal is, it can say no more about the
week's baskets than what the week's other shoppers actually bought. So the **oracles** here know
that, realised, from the future: for each target basket, the category shares of all *other*
households' purchases in the same week (``week``), the same calendar day (``day``) or the same
store and week (``store``, also ``store~`` shrunk towards the store's shares over the year by 200
pseudo-purchases, since small stores are noisy). Each is added to TIFU-KNN's scores
(``add``: + beta x shares) or multiplies them (``mul``: x (shares / year's shares)^beta). A
causal model of promotions can only approach these from below, as far as it acts through what
a store's shoppers buy that week.

The data set's **campaigns** (27 mailings of coupons to chosen households with start and end
dates: a real, causal and household-specific signal) are tried the same way: the category shares
of the coupons' products of every campaign the household holds while it runs (``add``) or a
boost of the categories they cover (``mul``: x (1 + beta)).

Prints NDCG@10 overall and on the switch slice against TIFU-KNN alone (the protocol's validation
choice) measured in the same run, and the user-clustered 95% CI of the best row's difference.
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

from interest_lib.datasets.complete_journey import UNKNOWN, load_tables, load_complete_journey, purchase_lines  # noqa: E402
from interest_lib.evaluate.event_benchmark import validation_cut  # noqa: E402
from interest_lib.evaluate.event_protocol import (  # noqa: E402
    encode_events, evaluate_model, make_targets, paired_bootstrap_ci, time_cut)
from interest_lib.metrics import per_target_metrics  # noqa: E402
from interest_lib.models.event_baselines import DAY_NS, TifuKnn  # noqa: E402

# TIFU-KNN as the protocol chooses it on Complete Journey's validation period (docs/event_protocol.md)
TIFU = dict(decay=0.995, unit="day", binary=False, prior=0.2, k=300, alpha=0.9)
SHRINK = 200.0  # pseudo-purchases of the store's year shares in ``store~``
EPS = 1e-4


def _l1(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(v.sum(axis=-1, keepdims=True), 1e-12)


class Groups:
    """Category counts per group (a week, a day or a store-week) and per (household, group), so
    that a household's own purchases can be taken out of its group's."""

    def __init__(self, group: np.ndarray, user: np.ndarray, category: np.ndarray, width: int):
        self.keys, g = np.unique(group, return_inverse=True)
        self.counts = np.zeros((len(self.keys), width))
        np.add.at(self.counts, (g, category), 1)
        own = pd.DataFrame({"u": user, "g": g, "c": category}).value_counts()
        self.own: dict[tuple[int, int], list] = {}
        for (u, gi, c), n in own.items():
            self.own.setdefault((int(u), int(gi)), []).append((int(c), int(n)))
        self.index = {k: i for i, k in enumerate(self.keys.tolist())}

    def others(self, user: int, key) -> np.ndarray:
        """Counts of the group ``key`` without ``user``'s own purchases in it."""
        gi = self.index[key]
        v = self.counts[gi].copy()
        for c, n in self.own.get((user, gi), ()):
            v[c] -= n
        return v


class ExogenousTifu(TifuKnn):
    """TIFU-KNN with a per-basket signal ``signal(user, now) -> (shares, year_shares)``."""

    name = "exogenous_tifu"

    def __init__(self, signal, form: str, beta: float, **tifu):
        super().__init__(**tifu)
        self.signal, self.form, self.beta = signal, form, beta

    def scores(self, users, now):
        """TIFU-KNN's scores, + beta x the signal's shares (add) or x its lift^beta (mul)."""
        base = super().scores(users, now)
        ext, ref = (np.stack(x) for x in zip(*(self.signal(int(u), now) for u in users)))
        if self.form == "add":
            return base + self.beta * ext
        if self.form == "boost":
            return base * (1 + self.beta * (ext > 0))
        return base * ((ext + EPS) / (ref + EPS)) ** self.beta


def oracle_signals(lines: pd.DataFrame, log) -> dict:
    """The realised-shares oracles by name: each maps (user index, basket time) to the other
    households' category shares of the basket's group and the year's shares they are set against."""
    user = pd.Index(log.users).get_indexer(lines["household_id"])
    category = pd.Index(log.categories).get_indexer(lines["category_id"]) + 1
    ts = pd.to_datetime(lines["transaction_timestamp"]).astype("datetime64[ns]").astype(np.int64).to_numpy()
    store = lines["store_id"].to_numpy()
    week = lines["week"].to_numpy().astype(np.int64)
    day = ts // DAY_NS
    width = len(log.categories) + 1
    basket = list(zip(user.tolist(), ts.tolist()))
    basket_store, basket_week = dict(zip(basket, store.tolist())), dict(zip(basket, week.tolist()))
    year = _l1(np.bincount(category, minlength=width).astype(float))
    by_week = Groups(week, user, category, width)
    by_day = Groups(day, user, category, width)
    by_store_week = Groups(store * 100 + week, user, category, width)
    stores, store_row = np.unique(store, return_inverse=True)
    per_store = np.zeros((len(stores), width))
    np.add.at(per_store, (store_row, category), 1)
    store_year = dict(zip(stores.tolist(), _l1(per_store)))

    def weekly(u, now):
        return _l1(by_week.others(u, basket_week[(u, now)])), year

    def daily(u, now):
        return _l1(by_day.others(u, now // DAY_NS)), year

    def store_weekly(u, now, shrink=0.0):
        s = basket_store[(u, now)]
        v = by_store_week.others(u, s * 100 + basket_week[(u, now)])
        return _l1(v + shrink * store_year[s]), store_year[s]

    return {"week": weekly, "day": daily, "store": store_weekly,
            "store~": lambda u, now: store_weekly(u, now, SHRINK)}


def campaign_signal(products: pd.DataFrame, log):
    """(user, now) -> the category shares of the coupons' products of the campaigns the household
    holds that run at ``now`` (zeros without any), and the same as its reference."""
    data = load_tables(["campaigns", "campaign_descriptions", "coupons"])
    width = len(log.categories) + 1
    coupons = data["coupons"].merge(products[["product_id", "product_category"]], on="product_id", how="left")
    coupons["c"] = pd.Index(log.categories).get_indexer(coupons["product_category"].fillna(UNKNOWN)) + 1
    shares = {cid: _l1(np.bincount(g["c"], minlength=width).astype(float))
              for cid, g in coupons[coupons["c"] > 0].groupby("campaign_id")}
    d = data["campaign_descriptions"]
    to_ns = lambda s: pd.to_datetime(s).astype("datetime64[ns]").astype(np.int64).to_numpy()  # noqa: E731
    runs = dict(zip(d["campaign_id"], zip(to_ns(d["start_date"]), to_ns(d["end_date"]) + DAY_NS)))
    users = pd.Index(log.users)
    held: dict[int, list] = {}
    for cid, h in zip(data["campaigns"]["campaign_id"], data["campaigns"]["household_id"]):
        if h in users and cid in shares:
            held.setdefault(int(users.get_loc(h)), []).append(cid)
    none = np.zeros(width)

    def signal(u, now):
        v = sum((shares[c] for c in held.get(u, ()) if runs[c][0] <= now < runs[c][1]), none)
        return v, v

    return signal


def main(argv=None) -> int:
    """Score TIFU-KNN, then each oracle and campaign row, on the validation period; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples of users for the best row's CI")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    tx, products = load_complete_journey()
    lines = purchase_lines(tx, products)
    log = encode_events(pd.DataFrame({"user_id": lines["household_id"].to_numpy(),
                                      "category": lines["category_id"].to_numpy(),
                                      "ts": lines["transaction_timestamp"].to_numpy()}))
    cut = time_cut(log.ts)
    targets = make_targets(log, validation_cut(log, cut), end=cut)
    switch = targets.is_switch
    ndcg = lambda model: per_target_metrics(evaluate_model(model, log, targets), (10,))["ndcg@10"]  # noqa: E731
    oracles, campaigns = oracle_signals(lines, log), campaign_signal(products, log)
    reference = ndcg(TifuKnn(**TIFU))
    print(f"Complete Journey, validation period: {len(reference):,} targets, {int(switch.sum()):,} switch")
    print(f"{'signal':22} {'form':5} {'beta':>5} {'ndcg@10 all':>12} {'vs TIFU':>8} {'switch':>8} {'vs TIFU':>8}")
    print(f"{'(TIFU-KNN alone)':22} {'':5} {'':>5} {reference.mean():12.5f} {'':>8} {reference[switch].mean():8.5f}")
    rows = [(f"oracle: {kind}", signal, form, beta)
            for kind, signal in oracles.items()
            for form, betas in (("add", (0.05, 0.1, 0.2, 0.4)), ("mul", (0.1, 0.25, 0.5, 1.0))) for beta in betas]
    rows += [("campaign coupons", campaigns, form, beta)
             for form, betas in (("add", (0.02, 0.05, 0.1)), ("boost", (0.1, 0.3))) for beta in betas]
    best = (-np.inf, None, None)
    for name, signal, form, beta in rows:
        got = ndcg(ExogenousTifu(signal, form, beta, **TIFU))
        gain = got.mean() / reference.mean() - 1
        print(f"{name:22} {form:5} {beta:5.2f} {got.mean():12.5f} {100 * gain:+7.2f}% "
              f"{got[switch].mean():8.5f} {100 * (got[switch].mean() / reference[switch].mean() - 1):+7.2f}%",
              flush=True)
        if gain > best[0]:
            best = (gain, f"{name} {form} {beta}", got)
    diff, lo, hi = paired_bootstrap_ci(best[2], reference, targets.user, args.boot)
    scale = 100 / reference.mean()
    print(f"best row ({best[1]}) vs TIFU-KNN, all: {scale * diff:+.2f}% [95% CI {scale * lo:+.2f}%, {scale * hi:+.2f}%]")
    print(f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
