"""Non-learned baselines for next-category prediction and next-window forecasting (pure numpy).

Every baseline takes a batch of ``gold.training_sequences`` columns as numpy arrays (see
:mod:`interest_lib.features.sequences`) and returns ``[N, C+1]`` arrays whose column 0 (padding)
is 0: ``next_scores`` ranks the next category, ``forecast`` is a distribution over the next
window's categories.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from interest_lib.metrics import check_ids, normalise_rows, per_target_metrics, sparse_to_dense, target_ranks, top_k

PRIOR = 1e-6  # weight of the popularity prior that breaks ties
#: The train columns that fitting any baseline reads (scoring with a baseline loads only these).
FIT_COLUMNS = ["ev_category", "next_category", "next_dist_category", "win_category"]
#: Rows counted at a time when fitting: the counts are the same, the int64 copies stay small
#: (1.5M train rows x 200 events were 2.4 GB per copy and ran a 30M-event bench out of memory).
FIT_CHUNK_ROWS = 65_536


def _ids(batch: dict[str, np.ndarray], key: str) -> np.ndarray:
    return np.asarray(batch[key], dtype=np.int64)


def _row_chunks(train: dict[str, np.ndarray], *keys: str):
    """``keys``' columns of ``train`` as int64 arrays, :data:`FIT_CHUNK_ROWS` rows at a time."""
    n = len(train[keys[0]])
    for start in range(0, n, FIT_CHUNK_ROWS):
        yield [np.asarray(train[k][start:start + FIT_CHUNK_ROWS], dtype=np.int64) for k in keys]


def category_counts(ids: np.ndarray, num_categories: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Per-row (weighted) counts ``[N, C+1]`` of the ids in ``[N, L]`` (column 0 = padding, zeroed)."""
    check_ids(ids, num_categories)
    n = ids.shape[0]
    flat = (np.arange(n)[:, None] * (num_categories + 1) + ids).ravel()
    w = None if weights is None else np.broadcast_to(weights, ids.shape).ravel()
    counts = np.bincount(flat, weights=w, minlength=n * (num_categories + 1)).reshape(n, num_categories + 1)
    counts[:, 0] = 0
    return counts.astype(np.float64)


def label_width(train: dict[str, np.ndarray]) -> int:
    """How many categories a label window keeps (the width of ``next_dist_category``; 5 without it)."""
    return np.asarray(train["next_dist_category"]).shape[1] if "next_dist_category" in train else 5


def last_event(ev_category: np.ndarray) -> np.ndarray:
    """Category of each row's most recent non-padding event (0 for rows without events)."""
    real = ev_category > 0
    pos = ev_category.shape[1] - 1 - np.argmax(real[:, ::-1], axis=1)
    return np.where(real.any(axis=1), ev_category[np.arange(len(ev_category)), pos], 0)


class Baseline:
    """Common interface: ``fit`` on a train batch, then ``next_scores`` / ``forecast`` on any batch."""

    name: ClassVar[str]
    num_categories: int
    popularity: np.ndarray  # [C+1], sums to 1 over 1..C

    def fit(self, train: dict[str, np.ndarray], num_categories: int) -> "Baseline":
        """Learn the global popularity (and whatever the subclass needs) from the train batch."""
        self.num_categories = num_categories
        size = num_categories + 1
        counts = np.zeros(size, dtype=np.int64)
        for ev, nxt in _row_chunks(train, "ev_category", "next_category"):
            check_ids(ev, num_categories)
            ev_counts = np.bincount(ev.ravel(), minlength=size)
            ev_counts[0] = 0  # padding, as category_counts zeroes it (labels count as they are)
            counts += ev_counts + np.bincount(nxt, minlength=size)
        self.popularity = normalise_rows(counts[None, :].astype(np.float64))[0]
        self._fit(train)
        return self

    def _fit(self, train: dict[str, np.ndarray]) -> None:
        pass

    def _prior(self, n: int) -> np.ndarray:
        return np.broadcast_to(self.popularity, (n, self.num_categories + 1))

    def next_scores(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """``[N, C+1]`` scores of the next category (higher = more likely; column 0 = 0)."""
        raise NotImplementedError

    def forecast(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """``[N, C+1]`` distribution over the next window's categories (default: normalised scores)."""
        return normalise_rows(self.next_scores(batch))


class PopularityBaseline(Baseline):
    """Global category frequency in train (labels plus all input events), the same for every row."""

    name = "popularity"

    def next_scores(self, batch):
        """The popularity distribution repeated for every row."""
        return self._prior(len(batch["ev_category"])).copy()


class DecayedFrequencyBaseline(Baseline):
    """Exponentially decayed count of each category in the row's events (weight 0.5 ** (age / half
    life), age 0 = most recent), plus a tiny popularity prior to break ties."""

    name = "decayed_frequency"

    def __init__(self, half_life_events: float = 10.0):
        self.half_life_events = half_life_events

    def next_scores(self, batch):
        """Normalised decayed counts of the row's event categories."""
        ev = _ids(batch, "ev_category")
        age = np.arange(ev.shape[1] - 1, -1, -1, dtype=np.float64)
        counts = category_counts(ev, self.num_categories, 0.5 ** (age / self.half_life_events))
        return normalise_rows(counts + PRIOR * self._prior(len(ev)))


class MarkovBaseline(Baseline):
    """First-order category transitions counted in train (consecutive events, and last event ->
    label), smoothed towards popularity: ``P[i, j] = (n_ij + alpha * C * pop_j) / (n_i + alpha * C)``,
    so a category never seen as a source falls back to popularity."""

    name = "markov"

    def __init__(self, alpha: float = 0.1):
        self.alpha = alpha

    def _fit(self, train):
        size = self.num_categories + 1
        counts = np.zeros(size * size, dtype=np.int64)
        for ev, nxt in _row_chunks(train, "ev_category", "next_category"):
            src = np.concatenate([ev[:, :-1].ravel(), last_event(ev)])
            dst = np.concatenate([ev[:, 1:].ravel(), nxt])
            keep = (src > 0) & (dst > 0)
            counts += np.bincount(src[keep] * size + dst[keep], minlength=size * size)
        counts = counts.reshape(size, size)
        mass = self.alpha * self.num_categories
        self.transitions = (counts + mass * self.popularity) / (counts.sum(axis=1, keepdims=True) + mass)

    def next_scores(self, batch):
        """The transition row of each row's last event category (popularity when it has no events)."""
        return self.transitions[last_event(_ids(batch, "ev_category"))]


class PersistenceBaseline(Baseline):
    """The next window looks like the cut-off window: forecast = the cut-off window's distribution
    (last ``top_k`` entries of ``win_category`` / ``win_share``; ``top_k`` defaults to the width of
    ``next_dist_category`` in train, else 5); scores = that plus a tiny popularity prior."""

    name = "persistence"

    def __init__(self, top_k: int | None = None):
        self.top_k = top_k

    def _fit(self, train):
        if self.top_k is None:
            self.top_k = label_width(train)

    def forecast(self, batch):
        """The cut-off window's category distribution."""
        k = self.top_k
        return sparse_to_dense(_ids(batch, "win_category")[:, -k:], np.asarray(batch["win_share"])[:, -k:],
                               self.num_categories)

    def next_scores(self, batch):
        """The cut-off window's distribution plus a tiny popularity prior."""
        dist = self.forecast(batch)
        return dist + PRIOR * self._prior(len(dist))


class PersonalFrequencyBaseline(Baseline):
    """Repeat-aware personal frequency, for purchase data where a category comes back every few
    weeks: the user's window profiles over the whole history the row holds (``win_category`` /
    ``win_share``, up to ``sequences.max_windows`` windows), each weighted ``window_decay ** age``
    (age 0 = the cut-off window) and summed, plus ``events_weight`` times the shares of the row's
    events, plus ``prior`` times popularity (the explore part). Per-event decay
    (:class:`DecayedFrequencyBaseline`) forgets a weekly shopper's staples after one or two baskets.
    The forecast keeps the top ``top_k`` of the scores (like the labels). :meth:`choose` picks the
    three settings on a validation split (NDCG@10 of the next category), so every data set gets
    its own, never the test split's."""

    name = "personal_frequency"
    #: The settings :meth:`choose` tries.
    GRID = {"window_decay": (0.8, 0.9, 0.95, 1.0), "events_weight": (0.0, 0.5), "prior": (0.01, 0.1)}

    def __init__(self, window_decay: float = 0.9, events_weight: float = 0.0, prior: float = 0.01,
                 top_k: int | None = None):
        self.window_decay, self.events_weight, self.prior, self.top_k = window_decay, events_weight, prior, top_k

    def _fit(self, train):
        if self.top_k is None:
            self.top_k = label_width(train)

    def settings(self) -> str:
        """The settings in use, for logs and reports."""
        return f"window_decay={self.window_decay}, events_weight={self.events_weight}, prior={self.prior}"

    def next_scores(self, batch):
        """Decayed sum of the window profiles (+ event shares) + prior x popularity."""
        wins = _ids(batch, "win_category")
        shares = np.asarray(batch["win_share"], dtype=np.float64)
        windows = wins.shape[1] // self.top_k
        age = np.repeat(np.arange(windows - 1, -1, -1, dtype=np.float64), self.top_k)
        scores = normalise_rows(category_counts(wins, self.num_categories, shares * self.window_decay ** age))
        if self.events_weight:
            events = normalise_rows(category_counts(_ids(batch, "ev_category"), self.num_categories))
            scores = normalise_rows(scores + self.events_weight * events)
        return scores + self.prior * self._prior(len(scores))

    def forecast(self, batch):
        """The top ``top_k`` of the scores, renormalised."""
        return sparse_to_dense(*top_k(self.next_scores(batch), self.top_k), self.num_categories)

    def choose(self, validation: dict[str, np.ndarray]) -> "PersonalFrequencyBaseline":
        """Set the :data:`GRID` point with the best mean NDCG@10 on ``validation`` (first wins ties)."""
        best = None
        for decay in self.GRID["window_decay"]:
            for weight in self.GRID["events_weight"]:
                for prior in self.GRID["prior"]:
                    self.window_decay, self.events_weight, self.prior = decay, weight, prior
                    ranks = target_ranks(self.next_scores(validation), _ids(validation, "next_category"))
                    ndcg = float(per_target_metrics(ranks)["ndcg@10"].mean())
                    if best is None or ndcg > best[0]:
                        best = (ndcg, decay, weight, prior)
        self.window_decay, self.events_weight, self.prior = best[1:]
        return self


BASELINES: dict[str, type[Baseline]] = {
    cls.name: cls for cls in (PopularityBaseline, DecayedFrequencyBaseline, MarkovBaseline, PersistenceBaseline,
                              PersonalFrequencyBaseline)
}


def fit_baselines(train: dict[str, np.ndarray], num_categories: int,
                  validation: dict[str, np.ndarray] | None = None) -> dict[str, Baseline]:
    """Every baseline in :data:`BASELINES` fitted on ``train``; those with settings to choose
    (``choose``) choose them on ``validation`` when given, else keep their defaults."""
    fitted = {name: cls().fit(train, num_categories) for name, cls in BASELINES.items()}
    if validation is not None and len(validation["next_category"]):
        for baseline in fitted.values():
            if hasattr(baseline, "choose"):
                baseline.choose(validation)
    return fitted
