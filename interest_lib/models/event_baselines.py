"""Incremental baselines for the event-level protocol (:mod:`interest_lib.evaluate.event_protocol`).

Each baseline keeps a small state: ``fit(log, n)`` builds it, vectorised, from the first ``n``
events of an :class:`~interest_lib.evaluate.event_protocol.EventLog`; ``observe(users, categories,
now)`` adds the events of one timestamp; ``scores(users, now)`` ranks all categories for users
whose history ends before ``now``. Events sharing a timestamp (a basket) are one set: nothing
here depends on their order. Nothing is retrained after ``fit``; states (counts, decayed
vectors) grow with what is observed, as the protocol's history does.

``popularity`` everywhere means the global category counts of all events observed so far
(every user, earlier timestamps only); ``prior`` weights its share (sums to 1) to break ties.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Callable, ClassVar, Optional

import numpy as np

DAY_NS = 86_400 * 10**9
UNITS = ("event", "basket", "day")


def _baskets(user: np.ndarray, ts: np.ndarray):
    """Per event: its basket's ordinal among the user's baskets and the number of the user's events
    in later baskets; per user: basket count, event count and last timestamp (``-1`` if none).
    ``ts`` must be sorted ascending."""
    n_users = int(user.max()) + 1 if len(user) else 0
    order = np.lexsort((ts, user))
    u, t = user[order], ts[order]
    new_user = np.r_[True, u[1:] != u[:-1]]
    new_basket = new_user | np.r_[True, t[1:] != t[:-1]]
    cum_b = np.cumsum(new_basket)
    first_b = np.maximum.accumulate(np.where(new_user, cum_b, 0))
    ordinal_sorted = cum_b - first_b
    n_baskets = np.zeros(n_users, dtype=np.int64)
    np.maximum.at(n_baskets, u, ordinal_sorted + 1)
    n_events = np.bincount(u, minlength=n_users)
    # events in later baskets = user's events - events up to and including this basket
    basket_end = np.r_[np.flatnonzero(new_basket)[1:], len(u)]  # end of each basket (exclusive)
    end_of_event = basket_end[cum_b - 1]
    user_start = np.maximum.accumulate(np.where(new_user, np.arange(len(u)), 0))
    later_sorted = n_events[u] - (end_of_event - user_start)
    ordinal, later = np.empty_like(ordinal_sorted), np.empty_like(later_sorted)
    ordinal[order], later[order] = ordinal_sorted, later_sorted
    last_ts = np.full(n_users, -1, dtype=np.int64)
    np.maximum.at(last_ts, u, t)
    return ordinal, later, n_baskets, n_events, last_ts


class EventBaseline:
    """Common part: global popularity so far, kept up to date by ``fit`` and ``observe``."""

    name: ClassVar[str]
    prior: float = 0.0

    def fit(self, log, n: int) -> "EventBaseline":
        """State from the first ``n`` events of ``log`` (those at or before the cut)."""
        self.num_users, self.num_categories = log.num_users, log.num_categories
        self.width = self.num_categories + 1
        self.counts = np.bincount(log.category[:n], minlength=self.width).astype(np.float64)
        self._fit(log.user[:n], log.category[:n], log.ts[:n])
        return self

    def observe(self, users: np.ndarray, categories: np.ndarray, now: int) -> None:
        """Add the events of one timestamp ``now`` (any number of users)."""
        np.add.at(self.counts, categories, 1.0)
        self._observe(np.asarray(users), np.asarray(categories), now)

    def share(self) -> np.ndarray:
        """Popularity so far as a distribution over 1..C (column 0 = 0)."""
        total = self.counts[1:].sum()
        return self.counts / total if total > 0 else np.zeros(self.width)

    def scores(self, users: np.ndarray, now: int) -> np.ndarray:
        """``[len(users), C+1]`` scores (higher = more likely; column 0 is never ranked)."""
        raise NotImplementedError

    def _fit(self, user, category, ts) -> None:
        pass

    def _observe(self, users, categories, now) -> None:
        pass


class Popularity(EventBaseline):
    """Global counts so far, the same for every user."""

    name = "popularity"

    def scores(self, users, now):
        """The counts so far, for every user."""
        return np.broadcast_to(self.counts, (len(users), self.width))


class DecayedState:
    """Per-user decayed category counts. ``unit``: ``event`` (weight ``decay ** e``, ``e`` = the
    user's events at later timestamps, so a basket's items share one weight), ``basket`` (``decay **
    b``, ``b`` = the user's later baskets) or ``day`` (``decay ** days`` elapsed). ``binary``: a basket
    counts each of its categories once."""

    def __init__(self, decay: float, unit: str, binary: bool):
        if unit not in UNITS:
            raise ValueError(f"decay unit must be one of {', '.join(UNITS)}, got {unit!r}")
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"decay must lie in (0, 1], got {decay}")
        self.decay, self.unit, self.binary = decay, unit, binary

    def fit(self, user, category, ts, num_users: int, width: int) -> None:
        """Vectors of every user from these events (sorted by time)."""
        self.ref = np.full(num_users, np.iinfo(np.int64).min // 2, dtype=np.int64)
        self.v = np.zeros((num_users, width))
        if not len(user):
            return
        if self.binary:  # one event per (user, timestamp, category)
            order = np.lexsort((category, user, ts))
            user, category, ts = user[order], category[order], ts[order]
            keep = np.r_[True, (user[1:] != user[:-1]) | (category[1:] != category[:-1]) | (ts[1:] != ts[:-1])]
            user, category, ts = user[keep], category[keep], ts[keep]
        ordinal, later, n_baskets, _, last_ts = _baskets(user, ts)
        if self.unit == "event":  # with binary, later events are counted on the de-duplicated baskets
            age = later.astype(np.float64)
        elif self.unit == "basket":
            age = (n_baskets[user] - 1 - ordinal).astype(np.float64)
        else:
            age = (last_ts[user] - ts) / DAY_NS
        np.add.at(self.v, (user, category), self.decay ** age)
        seen = last_ts >= 0
        self.ref[seen] = last_ts[seen]

    def observe(self, users, categories, now: int) -> None:
        """Decay the vectors of the users present at ``now`` and add their events."""
        if len(users) and users[0] == users[-1] and (users == users[0]).all():  # one basket: fast path
            u = int(users[0])
            cats, n = (np.unique(categories), None) if self.binary else np.unique(categories, return_counts=True)
            self.v[u] *= self._factor(len(cats) if self.binary else len(categories), now - self.ref[u])
            self.v[u, cats] += 1.0 if n is None else n
            self.ref[u] = now
            return
        for u in np.unique(users):
            self.observe(users[users == u], categories[users == u], now)

    def _factor(self, n_events: int, elapsed: int) -> float:
        if self.unit == "event":
            return self.decay ** n_events
        if self.unit == "basket":
            return self.decay
        return self.decay ** (max(int(elapsed), 0) / DAY_NS)

    def vectors(self, users, now: int) -> np.ndarray:
        """The users' vectors as of ``now`` (``day`` decays the time since their last basket)."""
        v = self.v[users]
        if self.unit == "day":
            v = v * (self.decay ** (np.maximum(now - self.ref[users], 0) / DAY_NS))[:, None]
        return v


class BucketedDayCounts:
    """Per user, per context bucket (e.g. the part of the day of the basket), category counts
    decayed ``decay`` per day: a household's habit per kind of trip. The bucket of each event or
    basket is given by the caller; the shares of one bucket are what a model reads."""

    def __init__(self, decay: float, buckets: int):
        self.decay, self.buckets = decay, buckets

    def fit(self, user, category, ts, bucket, num_users: int, width: int) -> None:
        """Counts of every user from these events (``bucket`` per event), decayed to the user's last one."""
        self.v = np.zeros((num_users, self.buckets, width))
        self.ref = np.full(num_users, -1, dtype=np.int64)
        np.maximum.at(self.ref, user, ts)
        np.add.at(self.v, (user, bucket, category), self.decay ** ((self.ref[user] - ts) / DAY_NS))

    def observe(self, user: int, categories, now: int, bucket: int) -> None:
        """Decay ``user``'s counts to ``now`` and add one basket's ``categories`` in ``bucket``."""
        if self.ref[user] >= 0:
            self.v[user] *= self.decay ** ((now - self.ref[user]) / DAY_NS)
        np.add.at(self.v[user, bucket], categories, 1.0)
        self.ref[user] = now

    def shares(self, users, bucket) -> np.ndarray:
        """``[len(users), width]`` shares of the users' counts in ``bucket`` (one or one per user);
        decay since the last basket scales a whole bucket alike, so shares need no decay to ``now``."""
        return _l1(self.v[users, bucket])


def _l1(v: np.ndarray) -> np.ndarray:
    total = v.sum(axis=1, keepdims=True)
    return np.divide(v, total, out=np.zeros_like(v), where=total > 0)


class DecayedFrequency(EventBaseline):
    """The user's decayed category counts plus ``prior`` x popularity share. The default (0.9 per
    event, prior 1e-6) is issue 13's reference baseline; per event is a poor unit for baskets."""

    name = "decayed_frequency"

    def __init__(self, decay: float = 0.9, unit: str = "event", binary: bool = False, prior: float = 1e-6):
        self.state = DecayedState(decay, unit, binary)
        self.prior = prior

    def _fit(self, user, category, ts):
        self.state.fit(user, category, ts, self.num_users, self.width)

    def _observe(self, users, categories, now):
        self.state.observe(users, categories, now)

    def scores(self, users, now):
        """Decayed counts + prior x popularity share."""
        return self.state.vectors(users, now) + self.prior * self.share()


class PersonalFrequency(DecayedFrequency):
    """Repeat-aware personal frequency: the user's decayed category shares (L1-normalised, decayed
    per basket or per day) plus ``prior`` x popularity share. A small prior ranks every repeat
    before any new category; a larger one lets popular unseen categories (explore) interleave."""

    name = "personal_frequency"

    def __init__(self, decay: float = 0.9, unit: str = "basket", binary: bool = True, prior: float = 1e-6):
        super().__init__(decay, unit, binary, prior)

    def scores(self, users, now):
        """Decayed shares + prior x popularity share."""
        return _l1(self.state.vectors(users, now)) + self.prior * self.share()


class Markov(EventBaseline):
    """First-order transitions between consecutive baskets of a user: every (category of basket
    b-1, category of basket b) pair of events counts once, counted so far (all users). Score = the
    row-normalised transitions averaged over the events of the user's last basket, plus ``prior``
    x popularity share (issue 13's reference uses 1e-3)."""

    name = "markov"

    def __init__(self, prior: float = 1e-3):
        self.prior = prior

    def _fit(self, user, category, ts):
        w = self.width
        ordinal, _, n_baskets, _, _ = _baskets(user, ts)
        self.last = np.zeros((self.num_users, w))  # counts of the last basket
        last = ordinal == n_baskets[user] - 1
        np.add.at(self.last, (user[last], category[last]), 1.0)
        # transitions: every pair (event of basket k-1, event of basket k) of the same user, from
        # the distinct (basket, category, count) triples, in chunks of at most ~4M pairs
        stride = int(n_baskets.max(initial=0)) + 1
        key = user * stride + ordinal
        trip, tn = np.unique(key * w + category, return_counts=True)
        tkey, tc = trip // w, trip % w
        keys, tb = np.unique(tkey, return_inverse=True)
        start = np.searchsorted(tb, np.arange(len(keys) + 1))
        size = np.diff(start)
        k = np.flatnonzero((keys[1:] - keys[:-1] == 1) & (keys[1:] % stride > 0)) + 1
        pairs = size[k - 1] * size[k]
        self.transitions = np.zeros(w * w)
        bounds = np.searchsorted(np.cumsum(pairs), np.arange(0, pairs.sum() + 4_000_000, 4_000_000), side="right")
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            kk, m = k[lo:hi], pairs[lo:hi]
            if not len(kk):
                continue
            off = np.arange(m.sum()) - np.repeat(np.cumsum(m) - m, m)
            width_b = np.repeat(size[kk], m)
            i = np.repeat(start[kk - 1], m) + off // width_b
            j = np.repeat(start[kk], m) + off % width_b
            self.transitions += np.bincount(tc[i] * w + tc[j], weights=(tn[i] * tn[j]).astype(np.float64),
                                            minlength=w * w)
        self.transitions = self.transitions.reshape(w, w)
        self.row_total = self.transitions.sum(axis=1)

    def _observe(self, users, categories, now):
        for u in np.unique(users):
            cats, n = np.unique(categories[users == u], return_counts=True)
            prev = np.flatnonzero(self.last[u])
            if len(prev):
                pn = self.last[u, prev]
                self.transitions[np.ix_(prev, cats)] += np.outer(pn, n)
                self.row_total[prev] += pn * n.sum()
                self.last[u, prev] = 0.0
            self.last[u, cats] = n

    def scores(self, users, now):
        """Mean transition row over the last basket's events + prior x popularity share."""
        out = np.zeros((len(users), self.width))
        for i, u in enumerate(users):
            prev = np.flatnonzero(self.last[u])
            total = self.row_total[prev]
            ok = total > 0
            if ok.any():
                w = self.last[u, prev[ok]] / self.last[u, prev].sum() / total[ok]
                out[i] = w @ self.transitions[prev[ok]]
        return out + self.prior * self.share()


class NeighbourCache:
    """The last neighbour means a :class:`TifuKnn` fit computed, for fits that differ only in
    ``alpha`` or ``prior`` (the validation grid tries several alphas per ``k``): neighbours depend
    on the history and on ``decay``, ``unit``, ``binary`` and ``k`` alone, and finding them is the
    cost of a fit (``O(users^2 x categories)``). One entry; the key holds a fingerprint of the
    history, so a cache outliving its log cannot serve another's neighbours."""

    def __init__(self):
        self.key, self.value = None, None

    def get(self, key: tuple, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached means for ``key``, else ``compute()`` (then cached)."""
        if self.key != key:
            self.key, self.value = None, None  # free the old means before computing new ones
            self.value = compute()
            self.key = key
        return self.value


class TifuKnn(PersonalFrequency):
    """TIFU-KNN in spirit: ``alpha`` x the user's decayed category shares + ``(1 - alpha)`` x the
    mean shares of the ``k`` most similar users (cosine of the share vectors), + ``prior`` x
    popularity share. Neighbours and their vectors are computed once, from the history at
    ``fit`` (the cut); the user's own vector keeps growing through the period. ``cache``: a
    :class:`NeighbourCache` shared by fits on the same history (not a setting: results are the
    same with or without)."""

    name = "tifu_knn"
    BLOCK = 2048  # most users whose neighbours are found at once
    #: most cells of a block's [block, U] float64 similarities (512 MiB; argpartition's copy
    #: doubles it): with many users the block shrinks (206,000 users: 325 at a time, not 2,048
    #: at 3.4 GB each)
    SIM_CELLS = 1 << 26
    GATHER = 16  # users whose neighbours' shares are gathered at once ([GATHER, k, C+1] floats)

    def __init__(self, decay: float = 0.9, unit: str = "basket", binary: bool = True, k: int = 100,
                 alpha: float = 0.7, prior: float = 1e-6, cache: Optional[NeighbourCache] = None):
        super().__init__(decay, unit, binary, prior)
        self.k, self.alpha, self.cache = k, alpha, cache

    def _fit(self, user, category, ts):
        super()._fit(user, category, ts)
        now = int(ts.max()) if len(ts) else 0
        shares = _l1(self.state.vectors(np.arange(self.num_users), now))
        if self.cache is None:
            self.neighbours = self._neighbour_means(shares)
            return
        history = (len(ts), int(user.sum()), int(category.sum()), int(ts.sum()), now, self.num_users, self.width)
        key = (history, self.state.decay, self.state.unit, self.state.binary, self.k)
        self.neighbours = self.cache.get(key, lambda: self._neighbour_means(shares))

    def _neighbour_means(self, shares: np.ndarray) -> np.ndarray:
        """``[U, C+1]``: each user's mean of its ``k`` nearest users' shares (zeros without any)."""
        unit = shares / np.maximum(np.linalg.norm(shares, axis=1, keepdims=True), 1e-300)
        nobody = shares.sum(axis=1) == 0  # users without history are nobody's neighbour
        k = min(self.k, max(self.num_users - 1, 1))
        means = np.zeros_like(shares)
        # users in blocks: memory [block, U] instead of [U, U] (20,000 users would need 6 GB)
        block = self.block_rows(self.num_users)
        for lo in range(0, self.num_users, block):
            rows = np.arange(lo, min(lo + block, self.num_users))
            sim = unit[rows] @ unit.T
            sim[np.arange(len(rows)), rows] = -np.inf
            sim[:, nobody] = -np.inf
            nn = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            valid = np.isfinite(np.take_along_axis(sim, nn, axis=1))
            weight = valid / np.maximum(valid.sum(axis=1, keepdims=True), 1)
            # the mean over the k gathered rows, not a [block, U] x [U, C+1] product that is all
            # but k zeros per row: that product cost as much as finding the neighbours
            for g in range(0, len(rows), self.GATHER):
                part = slice(g, g + self.GATHER)
                means[rows[part]] = np.einsum("rk,rkc->rc", weight[part], shares[nn[part]])
        return means

    def block_rows(self, num_users: int) -> int:
        """Users whose neighbours are found at once: :attr:`BLOCK`, fewer where their similarities
        to all ``num_users`` would exceed :attr:`SIM_CELLS`."""
        return max(1, min(self.BLOCK, self.SIM_CELLS // max(num_users, 1)))

    def scores(self, users, now):
        """alpha x own shares + (1 - alpha) x neighbours' mean shares + prior x popularity share."""
        own = _l1(self.state.vectors(users, now))
        return self.alpha * own + (1 - self.alpha) * self.neighbours[users] + self.prior * self.share()


@dataclass(frozen=True)
class Candidate:
    """One baseline setting tried on the validation period: a family name and its keyword args."""

    family: str
    params: dict

    def build(self, **extra) -> EventBaseline:
        """A fresh (unfitted) baseline with these settings (``extra``: arguments that are not
        settings, such as TIFU-KNN's ``cache``)."""
        return FAMILIES[self.family](**self.params, **extra)

    def label(self) -> str:
        """``family(key=value, ...)``, as the bench prints it."""
        return self.family + "(" + ", ".join(f"{k}={v}" for k, v in self.params.items()) + ")"


FAMILIES: dict[str, type[EventBaseline]] = {
    cls.name: cls for cls in (Popularity, DecayedFrequency, PersonalFrequency, Markov, TifuKnn)
}

#: Fixed baselines (issue 13's reference settings): nothing to tune.
FIXED = {
    "popularity": Candidate("popularity", {}),
    "decayed_frequency": Candidate("decayed_frequency", {"decay": 0.9, "unit": "event", "prior": 1e-6}),
    "markov": Candidate("markov", {"prior": 1e-3}),
}


def personal_frequency_grid() -> list[Candidate]:
    """Settings of the repeat-aware personal frequency tried on the validation period (its prior
    is tuned afterwards, see :mod:`interest_lib.evaluate.event_benchmark`)."""
    grid = [{"unit": "basket", "decay": d} for d in (0.8, 0.9, 0.95, 0.98, 1.0)]
    grid += [{"unit": "day", "decay": d} for d in (0.97, 0.99, 0.995, 0.998)]
    return [Candidate("personal_frequency", {**g, "binary": b, "prior": 1e-6})
            for g, b in product(grid, (True, False))]


def tifu_grid(own: dict) -> list[Candidate]:
    """TIFU-KNN settings tried on the validation period, on top of the chosen personal frequency."""
    return [Candidate("tifu_knn", {**own, "k": k, "alpha": a}) for k, a in product((50, 300), (0.4, 0.6, 0.8, 0.9))]
