"""Where issue 13's reference numbers on Complete Journey come from, and why the protocol does not
use them as is: three of them depend on an order among the items of one basket.

Replays the reference's order-dependent conventions in the file's order of purchase lines
(switch = category not among the last 5 *events*; frequency decayed 0.9 per *event position*;
Markov from the *last event* with transitions between consecutive events, items of one basket
included) next to the protocol's order-free ones, on the same targets.

    .venv/bin/python bench/event_protocol_reference.py     # about a minute
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from interest_lib.evaluate.cj_events import load_complete_journey_events
from interest_lib.evaluate.event_protocol import (
    EventLog, encode_events, evaluate_model, make_targets, time_cut,
)
from interest_lib.evaluate.metrics import metrics_from_ranks
from interest_lib.models.event_baselines import DecayedFrequency, EventBaseline, Markov, Popularity

REFERENCE = {  # NDCG@10 / HR@10: all, switch, new (issue 13)
    "popularity": (0.132, 0.255, 0.117, 0.233, 0.020, 0.052),
    "decayed 0.9/event": (0.109, 0.211, 0.050, 0.128, 0.001, 0.002),
    "markov": (0.119, 0.240, 0.093, 0.207, 0.016, 0.042),
}


def file_order_log(df: pd.DataFrame) -> EventLog:
    """The log with ties (same timestamp, same user) kept in the file's order (order-dependent!)."""
    log = encode_events(df)
    user = pd.Index(log.users).get_indexer(df.user_id)
    cat = pd.Index(log.categories).get_indexer(df.category) + 1
    ts = df.ts.to_numpy().astype("datetime64[ns]").astype(np.int64)
    order = np.lexsort((np.arange(len(df)), user, ts))
    return EventLog(user=user[order], category=cat[order], ts=ts[order], users=log.users, categories=log.categories)


class PositionalDecay(EventBaseline):
    """Frequency decayed 0.9 per event position in the log's order (order-dependent)."""

    name = "decayed 0.9/event"

    def __init__(self, decay=0.9, prior=1e-6):
        self.decay, self.prior = decay, prior

    def _fit(self, user, category, ts):
        order = np.argsort(user, kind="stable")
        u = user[order]
        later = np.bincount(u, minlength=self.num_users)[u] - 1 - (np.arange(len(u)) - np.searchsorted(u, u))
        self.v = np.zeros((self.num_users, self.width))
        np.add.at(self.v, (u, category[order]), self.decay ** later)

    def _observe(self, users, categories, now):
        for x in np.unique(users):
            cs = categories[users == x]
            self.v[x] *= self.decay ** len(cs)
            np.add.at(self.v[x], cs, self.decay ** np.arange(len(cs) - 1, -1, -1))

    def scores(self, users, now):
        return self.v[users] + self.prior * self.share()


class LastEventMarkov(EventBaseline):
    """Transitions between consecutive events in the log's order, from the last event (order-dependent)."""

    name = "markov"

    def __init__(self, prior=1e-3):
        self.prior = prior

    def _fit(self, user, category, ts):
        order = np.argsort(user, kind="stable")
        u, c = user[order], category[order]
        same = u[1:] == u[:-1]
        self.t = np.zeros((self.width, self.width))
        np.add.at(self.t, (c[:-1][same], c[1:][same]), 1.0)
        self.last = np.zeros(self.num_users, dtype=np.int64)
        self.last[u] = c  # last assignment wins: the user's last event

    def _observe(self, users, categories, now):
        for x in np.unique(users):
            seq = categories[users == x]
            seq = np.r_[self.last[x], seq] if self.last[x] else seq
            np.add.at(self.t, (seq[:-1], seq[1:]), 1.0)
            self.last[x] = seq[-1]

    def scores(self, users, now):
        total = self.t.sum(axis=1, keepdims=True)
        rows = np.divide(self.t, total, out=np.zeros_like(self.t), where=total > 0)[self.last[users]]
        return rows + self.prior * self.share()


def last5_switch(log: EventLog, targets) -> np.ndarray:
    """Per target: category not among the user's last 5 events in the log's order (order-dependent)."""
    order = np.argsort(log.user, kind="stable")
    u, c, t = log.user[order], log.category[order], log.ts[order]
    # position of each target basket's first event in user-major order
    key = pd.MultiIndex.from_arrays([u, t])
    first = pd.Series(np.arange(len(u))).groupby(key).min()
    p = first.reindex(pd.MultiIndex.from_arrays([targets.user, targets.basket_ts[targets.basket]])).to_numpy()
    inside = np.zeros(len(targets), dtype=bool)
    for k in range(1, 6):
        q = p - k
        ok = (q >= 0) & (u[np.maximum(q, 0)] == targets.user)
        inside |= ok & (c[np.maximum(q, 0)] == targets.category)
    return ~inside


def main() -> int:
    """Print the order-dependent replay next to the order-free protocol and the reference."""
    df = load_complete_journey_events()
    free = encode_events(df)
    ordered = file_order_log(df)
    cut = time_cut(free.ts)
    tf, to = make_targets(free, cut), make_targets(ordered, cut)
    switch_ordered = last5_switch(ordered, to)
    print(f"cut {pd.Timestamp(cut)}; targets {len(tf):,}; new {int(tf.is_new.sum()):,}; switch: order-free "
          f"{int(tf.is_switch.sum()):,}, last 5 events in file order {int(switch_ordered.sum()):,} (reference 265,500)")
    print(f"{'NDCG@10/HR@10':<44}{'all':>14}{'switch':>14}{'new':>14}")

    def line(label, ranks, targets, switch):
        cells = []
        for mask in (np.ones(len(targets), bool), switch, targets.is_new):
            m = metrics_from_ranks(ranks[mask], (10,))
            cells.append(f"{m['ndcg@10']:.4f}/{m['hr@10']:.4f}")
        print(f"{label:<44}" + "".join(f"{x:>14}" for x in cells))

    pairs = [("popularity", Popularity(), Popularity()),
             ("decayed 0.9/event", DecayedFrequency(0.9, "event"), PositionalDecay()),
             ("markov", Markov(1e-3), LastEventMarkov())]
    for name, order_free, replay in pairs:
        ref = REFERENCE[name]
        print(f"{name + ' (reference)':<44}" + "".join(f"{ref[i]:.3f}/{ref[i + 1]:.3f}".rjust(14) for i in (0, 2, 4)))
        line(f"{name} (file-order replay)", evaluate_model(replay, ordered, to), to, switch_ordered)
        line(f"{name} (order-free protocol)", evaluate_model(order_free, free, tf), tf, tf.is_switch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
