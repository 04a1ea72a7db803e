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

from interest_lib.event_stream import (  # noqa: F401  (the protocol's public names)
    SLICES, SWITCH_WINDOW, EventLog, Targets, encode_events, make_targets, score_targets, time_cut,
)
from interest_lib.metrics import all_ranks, metrics_from_ranks, per_target_metrics

KS = (1, 3, 10)
METRICS = ("hr@1", "hr@3", "hr@10", "ndcg@10", "mrr")


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
