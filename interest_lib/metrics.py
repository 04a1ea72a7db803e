"""Vectorised numpy metrics for next-category ranking and next-window forecasts, and the dense
distribution helpers the baselines and scoring share (numpy only, below the stages).

Score arrays are ``[N, C+1]``: column 0 is padding and is never ranked; category ids are 1..C.
Ties are broken against the target, so a constant predictor ranks the target last.
"""

from __future__ import annotations

import numpy as np

DEFAULT_KS = (1, 5, 10)


def check_ids(ids: np.ndarray, num_categories: int) -> None:
    """Raise ValueError unless every id lies in 0..C (0 = padding)."""
    if ids.size and (ids.min() < 0 or ids.max() > num_categories):
        raise ValueError(f"category ids must lie in 0..{num_categories}, got {ids.min()}..{ids.max()}")


def target_ranks(scores: np.ndarray, target: np.ndarray) -> np.ndarray:
    """1-based rank of each row's target among columns 1..C, ties counted against the target
    (rank = number of categories scoring at least as high as the target, itself included)."""
    s = np.asarray(scores, dtype=np.float64)[:, 1:]
    t = np.asarray(target, dtype=np.int64)
    if t.size and (t.min() < 1 or t.max() > s.shape[1]):
        raise ValueError(f"targets must lie in 1..{s.shape[1]}")
    own = s[np.arange(len(t)), t - 1][:, None]
    return (s >= own).sum(axis=1)


def per_target_metrics(ranks: np.ndarray, ks=DEFAULT_KS) -> dict[str, np.ndarray]:
    """Per-row HR@k and NDCG@k for each k and reciprocal rank (``mrr``) from 1-based ranks."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        hit = ranks <= k
        out[f"hr@{k}"] = hit.astype(np.float64)
        out[f"ndcg@{k}"] = np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0)
    out["mrr"] = 1.0 / ranks
    return out


def metrics_from_ranks(ranks: np.ndarray, ks=DEFAULT_KS) -> dict[str, float]:
    """HR@k and NDCG@k for each k, MRR and the row count ``n`` from 1-based ranks (NaN metrics
    when there are no rows)."""
    out: dict[str, float] = {name: float(v.mean()) if len(v) else float("nan")
                             for name, v in per_target_metrics(ranks, ks).items()}
    out["n"] = int(len(ranks))
    return out


def ranking_metrics(scores: np.ndarray, target: np.ndarray, ks=DEFAULT_KS) -> dict[str, float]:
    """HR@k and NDCG@k for each k, MRR and the row count ``n`` (NaN metrics when there are no rows)."""
    return metrics_from_ranks(target_ranks(scores, target), ks)


def sliced_ranking_metrics(scores: np.ndarray, target: np.ndarray, is_switch: np.ndarray,
                           ks=DEFAULT_KS) -> dict[str, dict[str, float]]:
    """Ranking metrics on all rows (``all``) and on the rows whose label is a switch (``switch``)."""
    scores, target, mask = np.asarray(scores), np.asarray(target), np.asarray(is_switch, dtype=bool)
    return {"all": ranking_metrics(scores, target, ks),
            "switch": ranking_metrics(scores[mask], target[mask], ks)}


def sparse_to_dense(idx: np.ndarray, share: np.ndarray, num_categories: int) -> np.ndarray:
    """Dense ``[N, C+1]`` row distributions from top-K (id, share) pairs; id 0 (padding) is dropped
    and a row with no mass becomes uniform over 1..C."""
    idx = np.asarray(idx, dtype=np.int64)
    share = np.asarray(share, dtype=np.float64)
    check_ids(idx, num_categories)
    n = idx.shape[0]
    flat = (np.arange(n)[:, None] * (num_categories + 1) + idx).ravel()
    dense = np.bincount(flat, weights=share.ravel(), minlength=n * (num_categories + 1))
    dense = dense.reshape(n, num_categories + 1)
    dense[:, 0] = 0.0
    return normalise_rows(dense)


def normalise_rows(dense: np.ndarray) -> np.ndarray:
    """Rows of non-negative ``[N, C+1]`` scores scaled to sum 1 over columns 1..C (column 0 set to 0);
    a row with no mass becomes uniform over 1..C."""
    dense = np.array(dense, dtype=np.float64)
    dense[:, 0] = 0.0
    total = dense.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 0
    dense[empty, 1:] = 1.0
    total[empty] = dense.shape[1] - 1
    return dense / total


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-row Jensen–Shannon divergence in bits (0..1) of ``[N, D]`` distributions (rows are
    normalised first; zero entries are handled exactly, no epsilon)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p = p / p.sum(axis=-1, keepdims=True)
    q = q / q.sum(axis=-1, keepdims=True)
    m = 0.5 * (p + q)

    def kl(a):  # KL(a || m); m > 0 wherever a > 0
        ratio = np.divide(a, m, out=np.ones_like(a), where=a > 0)
        return (a * np.log2(ratio)).sum(axis=-1)

    return np.clip(0.5 * (kl(p) + kl(q)), 0.0, 1.0)


def stage_hits(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(1.0 / 0.0 per row with a known target stage, that known mask): the rows stage accuracy
    averages (target 0 = unknown)."""
    pred, target = np.asarray(pred), np.asarray(target)
    known = target != 0
    return (pred[known] == target[known]).astype(np.float64), known


def stage_accuracy(pred: np.ndarray, target: np.ndarray) -> float:
    """Share of rows with a known target stage (target != 0) whose prediction is right (NaN if none)."""
    hits, _ = stage_hits(pred, target)
    return float(hits.mean()) if len(hits) else float("nan")


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best categories per row (ids 1..C, column 0 excluded) and their scores, descending."""
    s = np.asarray(scores, dtype=np.float64)[:, 1:]
    k = min(k, s.shape[1])
    if k < s.shape[1]:
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(s.shape[1]), s.shape)
    vals = np.take_along_axis(s, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    return idx + 1, np.take_along_axis(vals, order, axis=1)


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
