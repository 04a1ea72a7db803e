"""Non-learned baselines for next-category prediction and next-window forecasting (pure numpy).

Every baseline takes a batch of ``gold.training_sequences`` columns as numpy arrays (see
:mod:`interest_lib.features.sequences`) and returns ``[N, C+1]`` arrays whose column 0 (padding)
is 0: ``next_scores`` ranks the next category, ``forecast`` is a distribution over the next
window's categories.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from interest_lib.metrics import check_ids, normalise_rows, sparse_to_dense

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
            self.top_k = np.asarray(train["next_dist_category"]).shape[1] if "next_dist_category" in train else 5

    def forecast(self, batch):
        """The cut-off window's category distribution."""
        k = self.top_k
        return sparse_to_dense(_ids(batch, "win_category")[:, -k:], np.asarray(batch["win_share"])[:, -k:],
                               self.num_categories)

    def next_scores(self, batch):
        """The cut-off window's distribution plus a tiny popularity prior."""
        dist = self.forecast(batch)
        return dist + PRIOR * self._prior(len(dist))


BASELINES: dict[str, type[Baseline]] = {
    cls.name: cls for cls in (PopularityBaseline, DecayedFrequencyBaseline, MarkovBaseline, PersistenceBaseline)
}


def fit_baselines(train: dict[str, np.ndarray], num_categories: int) -> dict[str, Baseline]:
    """Every baseline in :data:`BASELINES` with default parameters, fitted on ``train``."""
    return {name: cls().fit(train, num_categories) for name, cls in BASELINES.items()}
