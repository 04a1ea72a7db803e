"""Event-level evaluation protocol, the same for every data set (pure numpy/pandas, no Spark).

The protocol (issue 13):

- a global time cut at the 80th percentile of event times (:func:`time_cut`);
- every event after the cut whose user has an event at or before the cut is a target, predicted
  from all of that user's events with an *earlier* timestamp: events sharing a timestamp (the items
  of one basket) are one set and never see each other; the history grows through the test period;
  models are not retrained (:func:`make_targets`, :func:`score_targets`);
- full ranking over all categories, ties counted against the target (:mod:`.metrics`);
- slices ``all``, ``switch`` and ``new`` (:func:`make_targets` documents them);
- HR@1, HR@3, HR@10, NDCG@10, MRR, and each model-vs-best-baseline difference with a paired
  bootstrap 95% CI that resamples *users* (clusters) with all their targets
  (:func:`paired_bootstrap_ci`).

A model is anything with ``fit(log, n)`` (state from the first ``n`` events of the log),
``scores(users, now)`` (``[len(users), C+1]`` scores, column 0 = padding) and
``observe(users, categories, now)`` (the events of one timestamp); see
:mod:`interest_lib.models.event_baselines`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from interest_lib.evaluate.metrics import metrics_from_ranks, per_target_metrics

KS = (1, 3, 10)
METRICS = ("hr@1", "hr@3", "hr@10", "ndcg@10", "mrr")
SLICES = ("all", "switch", "new")
SWITCH_WINDOW = 5  # "switch": the category is not among the categories of the user's last 5 events


@dataclass(frozen=True)
class EventLog:
    """Encoded events sorted by time: ``user`` 0..U-1, ``category`` 1..C (0 is padding), ``ts`` int64
    nanoseconds. Events sharing a timestamp are sorted by user then category; that order means
    nothing and no model or label may depend on it. ``users`` / ``categories`` hold the original
    ids and names (index ``i`` for user ``i``, index ``c - 1`` for category ``c``)."""

    user: np.ndarray
    category: np.ndarray
    ts: np.ndarray
    users: np.ndarray
    categories: np.ndarray

    @property
    def num_users(self) -> int:
        return len(self.users)

    @property
    def num_categories(self) -> int:
        return len(self.categories)

    def __len__(self) -> int:
        return len(self.ts)

    def upto(self, t: int) -> int:
        """Number of events with timestamp ``<= t`` (they are the first ones of the log)."""
        return int(np.searchsorted(self.ts, t, side="right"))


def encode_events(df: pd.DataFrame, user_col: str = "user_id", category_col: str = "category",
                  ts_col: str = "ts") -> EventLog:
    """An :class:`EventLog` from a frame of events (one row per event; ``ts_col`` datetime-like or
    integer nanoseconds). Raises ValueError naming the column when one is missing or has nulls."""
    for col in (user_col, category_col, ts_col):
        if col not in df.columns:
            raise ValueError(f"events frame has no column {col!r} (columns: {', '.join(map(str, df.columns))})")
        if df[col].isna().any():
            raise ValueError(f"events column {col!r} has {int(df[col].isna().sum())} null values")
    ts = df[ts_col]
    ts = (pd.to_datetime(ts).astype("datetime64[ns]").astype(np.int64) if not pd.api.types.is_integer_dtype(ts)
          else ts.astype(np.int64)).to_numpy()
    user, users = pd.factorize(df[user_col], sort=True)
    cat, cats = pd.factorize(df[category_col], sort=True)
    cat = cat.astype(np.int64) + 1
    order = np.lexsort((cat, user, ts))
    return EventLog(user=user.astype(np.int64)[order], category=cat[order], ts=ts[order],
                    users=np.asarray(users), categories=np.asarray(cats))


def time_cut(ts: np.ndarray, quantile: float = 0.8) -> int:
    """The cut: the ``quantile`` of event times (``method='lower'``, so it is an event's own time).
    Events at or before it are history; events after it are targets."""
    if len(ts) == 0:
        raise ValueError("no events: cannot place a time cut")
    return int(np.quantile(np.asarray(ts), quantile, method="lower"))


@dataclass
class Targets:
    """The targets of one period ``(cut, end]``. A *basket* is the set of a user's events at one
    timestamp; ``basket_user`` / ``basket_ts`` list the target baskets sorted by time then user.
    Per target event: ``basket`` (index into the baskets), ``user``, ``category``, ``is_switch``,
    ``is_new``."""

    cut: int
    end: int
    basket_user: np.ndarray
    basket_ts: np.ndarray
    basket: np.ndarray
    user: np.ndarray
    category: np.ndarray
    is_switch: np.ndarray
    is_new: np.ndarray

    def __len__(self) -> int:
        return len(self.category)

    def slice_mask(self, name: str) -> np.ndarray:
        """Boolean mask of the targets in slice ``all``, ``switch`` or ``new``."""
        if name == "all":
            return np.ones(len(self), dtype=bool)
        if name in ("switch", "new"):
            return getattr(self, f"is_{name}")
        raise ValueError(f"unknown slice {name!r}; known: {', '.join(SLICES)}")


def make_targets(log: EventLog, cut: int, end: int | None = None,
                 switch_window: int = SWITCH_WINDOW) -> Targets:
    """Targets of the period ``(cut, end]`` (``end`` defaults to the last event): the events after
    the cut of users with at least one event at or before it.

    Slices, both order-free (they only use earlier timestamps):

    - ``new``: the user never had the category before (any earlier timestamp, test period included);
    - ``switch``: the category is not among the categories of the user's last ``switch_window``
      events. Ties: the user's most recent baskets are taken *whole*, newest first, until they
      cover at least ``switch_window`` events (all events at the timestamps of the last 5 events).
    """
    end = int(log.ts[-1]) if end is None else int(end)
    n_end = log.upto(end)
    user, cat, ts = log.user[:n_end], log.category[:n_end], log.ts[:n_end]
    has_history = np.zeros(log.num_users, dtype=bool)
    has_history[user[ts <= cut]] = True

    # Baskets in user-major order: b = index of (user, ts); first_event[b] = events before it.
    order = np.lexsort((cat, ts, user))
    u, c, t = user[order], cat[order], ts[order]
    new_basket = np.r_[True, (u[1:] != u[:-1]) | (t[1:] != t[:-1])]
    b = np.cumsum(new_basket) - 1
    first_event = np.flatnonzero(new_basket)
    b_user = u[first_event]
    user_first_basket = np.full(log.num_users, -1)
    user_first_basket[b_user[::-1]] = np.arange(len(b_user))[::-1]

    # Oldest basket of the switch window of each basket: the newest j with >= W events in j..b-1.
    j = np.searchsorted(first_event, first_event - switch_window, side="right") - 1
    window_start = np.maximum(j, user_first_basket[b_user])

    # For each event: the user's previous basket holding the same category (-1 if none).
    o2 = np.lexsort((b, c, u))
    su, sc, sb = u[o2], c[o2], b[o2]
    same_uc = np.r_[False, (su[1:] == su[:-1]) & (sc[1:] == sc[:-1])]
    group_start = ~(same_uc & np.r_[False, sb[1:] == sb[:-1]])  # first event of each (u, c, b)
    first_of_group = np.maximum.accumulate(np.where(group_start, np.arange(len(sb)), 0))
    prev_pos = first_of_group - 1
    prev_b_sorted = np.where((prev_pos >= 0) & same_uc[first_of_group], sb[np.maximum(prev_pos, 0)], -1)
    prev_b = np.empty_like(prev_b_sorted)
    prev_b[o2] = prev_b_sorted

    is_target = (t > cut) & has_history[u]
    tb = b[is_target]
    basket_ids, basket_index = np.unique(tb, return_inverse=True)
    # Re-sort target baskets by time, then user (the order score_targets streams them in).
    bt_order = np.lexsort((b_user[basket_ids], t[first_event[basket_ids]]))
    rank_of = np.empty_like(bt_order)
    rank_of[bt_order] = np.arange(len(bt_order))
    basket_ids = basket_ids[bt_order]
    pb = prev_b[is_target]
    ev_order = np.lexsort((c[is_target], rank_of[basket_index]))
    return Targets(
        cut=int(cut), end=end,
        basket_user=b_user[basket_ids], basket_ts=t[first_event[basket_ids]],
        basket=rank_of[basket_index][ev_order], user=u[is_target][ev_order], category=c[is_target][ev_order],
        is_switch=(pb < window_start[tb])[ev_order], is_new=(pb < 0)[ev_order],
    )


def score_targets(model, log: EventLog, targets: Targets) -> np.ndarray:
    """``[baskets, C+1]`` scores of every target basket: the model is fitted on the events at or
    before the cut, then the period is streamed one timestamp at a time: first the target
    baskets of that timestamp are scored, then all its events are observed (so events sharing a
    timestamp never see each other, and later targets see the grown history)."""
    n0, n1 = log.upto(targets.cut), log.upto(targets.end)
    model.fit(log, n0)
    out = np.zeros((len(targets.basket_ts), log.num_categories + 1))
    ts = log.ts[n0:n1]
    starts = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]]) + n0
    ends = np.r_[starts[1:], n1]
    lo = np.searchsorted(targets.basket_ts, log.ts[starts], side="left")
    hi = np.searchsorted(targets.basket_ts, log.ts[starts], side="right")
    for a, e, bl, bh in zip(starts.tolist(), ends.tolist(), lo.tolist(), hi.tolist()):
        now = int(log.ts[a])
        if bh > bl:
            out[bl:bh] = model.scores(targets.basket_user[bl:bh], now)
        model.observe(log.user[a:e], log.category[a:e], now)
    return out


def all_ranks(scores: np.ndarray) -> np.ndarray:
    """``[N, C]`` 1-based rank of every column among columns 1..C of ``[N, C+1]`` scores, ties
    counted against it (the number of columns scoring at least as high), as
    :func:`~interest_lib.evaluate.metrics.target_ranks` ranks one target."""
    s = np.asarray(scores, dtype=np.float64)[:, 1:]
    order = np.argsort(-s, axis=1, kind="stable")
    desc = np.take_along_axis(s, order, axis=1)
    width = s.shape[1]
    group_end = np.ones_like(desc, dtype=bool)
    group_end[:, :-1] = desc[:, 1:] != desc[:, :-1]
    ends = np.where(group_end, np.arange(width), width)
    last_tied = np.minimum.accumulate(ends[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, last_tied + 1, axis=1)
    return ranks


def target_ranks_of(basket_scores: np.ndarray, targets: Targets, chunk: int = 8192) -> np.ndarray:
    """1-based rank of every target event's category in its basket's scores (ties against it).
    Each basket's scores are ranked once, whatever the number of its targets."""
    ranks = np.empty(len(targets), dtype=np.int64)
    bounds = np.searchsorted(targets.basket, np.arange(0, len(basket_scores) + chunk, chunk))
    for i, lo in enumerate(range(0, len(basket_scores), chunk)):
        a, b = bounds[i], bounds[i + 1]
        block = all_ranks(basket_scores[lo:lo + chunk])
        ranks[a:b] = block[targets.basket[a:b] - lo, targets.category[a:b] - 1]
    return ranks


def evaluate_model(model, log: EventLog, targets: Targets) -> np.ndarray:
    """Per-target ranks of one model on the period of ``targets``."""
    return target_ranks_of(score_targets(model, log, targets), targets)


@dataclass(frozen=True)
class ClusterBootstrap:
    """Resampling weights drawn once for a set of targets: ``cluster`` (index 0..K-1 of each
    target's cluster) and ``weights`` ``[n_boot, K]`` (how often each cluster is drawn)."""

    cluster: np.ndarray
    weights: np.ndarray

    @classmethod
    def draw(cls, clusters: np.ndarray, n_boot: int = 1000, seed: int = 0) -> "ClusterBootstrap":
        """Draw ``n_boot`` resamples of the clusters (with replacement, K out of K)."""
        _, k = np.unique(clusters, return_inverse=True)
        n = int(k.max()) + 1 if len(k) else 0
        rng = np.random.default_rng(seed)
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64) if n else np.zeros((n_boot, 0))
        return cls(cluster=k, weights=w)

    def ci(self, a: np.ndarray, b: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
        """Mean of ``a - b`` and its percentile CI over the resamples."""
        diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
        if len(diff) == 0:
            return float("nan"), float("nan"), float("nan")
        n = self.weights.shape[1]
        sums = np.bincount(self.cluster, weights=diff, minlength=n)
        counts = np.bincount(self.cluster, minlength=n).astype(np.float64)
        boot = (self.weights @ sums) / np.maximum(self.weights @ counts, 1.0)
        tail = (1.0 - level) / 2.0
        lo, hi = np.quantile(boot, [tail, 1.0 - tail])
        return float(diff.mean()), float(lo), float(hi)


def paired_bootstrap_ci(a: np.ndarray, b: np.ndarray, clusters: np.ndarray, n_boot: int = 1000,
                        level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a - b`` (paired per-target values) and its bootstrap ``level`` CI (percentile),
    resampling clusters (users) with replacement and keeping all targets of a drawn cluster."""
    if len(a) == 0:
        return float("nan"), float("nan"), float("nan")
    return ClusterBootstrap.draw(clusters, n_boot, seed).ci(a, b, level)


def protocol_table(ranks: dict[str, np.ndarray], targets: Targets, reference: str,
                   n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Long table, one row per (model, slice, metric): ``value``, and the difference to model
    ``reference`` (the best baseline) with its user-clustered paired bootstrap 95% CI
    (``diff``, ``lo``, ``hi``, and ``rel`` = diff / reference value)."""
    if reference not in ranks:
        raise ValueError(f"reference model {reference!r} not among {', '.join(ranks)}")
    per = {name: per_target_metrics(r, KS) for name, r in ranks.items()}
    rows = []
    for sl in SLICES:
        mask = targets.slice_mask(sl)
        boot = ClusterBootstrap.draw(targets.user[mask], n_boot, seed) if mask.any() else None
        for name in ranks:
            values = metrics_from_ranks(ranks[name][mask], KS)
            for metric in METRICS:
                v, ref = per[name][metric][mask], per[reference][metric][mask]
                value = values[metric]
                d, lo, hi = ((0.0, 0.0, 0.0) if name == reference else
                             boot.ci(v, ref) if boot is not None else (float("nan"),) * 3)
                ref_mean = float(ref.mean()) if len(ref) else float("nan")
                rows.append({"model": name, "slice": sl, "metric": metric, "n": int(mask.sum()),
                             "value": value, "diff": d, "lo": lo, "hi": hi,
                             "rel": d / ref_mean if ref_mean else float("nan")})
    return pd.DataFrame(rows)


def format_table(table: pd.DataFrame, reference: str, ci_metric: str = "ndcg@10") -> str:
    """The protocol table as text: per slice, one line per model with every metric and the
    difference in ``ci_metric`` to ``reference`` with its 95% CI."""
    lines = []
    for sl in SLICES:
        part = table[table.slice == sl]
        if part.empty:
            continue
        lines.append(f"[{sl}] n={int(part.n.iloc[0]):,}  (diff vs {reference}, 95% CI, users resampled)")
        lines.append(f"  {'model':<22}" + "".join(f"{m:>9}" for m in METRICS) + f"   d{ci_metric} [95% CI] (rel)")
        for name, g in part.groupby("model", sort=False):
            g = g.set_index("metric")
            row = g.loc[ci_metric]
            ci = ("(best baseline)" if name == reference else
                  f"{row['diff']:+.4f} [{row['lo']:+.4f}, {row['hi']:+.4f}] ({row['rel']:+.1%})")
            lines.append(f"  {name:<22}" + "".join(f"{g.loc[m, 'value']:9.4f}" for m in METRICS) + "   " + ci)
    return "\n".join(lines)
