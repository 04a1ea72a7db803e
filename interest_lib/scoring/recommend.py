"""Recommendations that balance exploitation and exploration (numpy, vectorised per batch).

Exploit slots rank the user's categories (in the current profile, or with at least
``min_forecast_share`` of the forecast) by the mean of the current profile and the forecast
next-window distribution (what the user likes now and is expected to keep liking). Explore slots
rank the categories *outside* the current profile by the migration model's next-category
probability: where the user is likely to move, which also surfaces underexplored categories the
model rates for this user. ``explore_share`` of the slots explore; when a user has fewer current
interests than exploit slots, exploration fills the rest.
"""

from __future__ import annotations

import numpy as np

EXPLOIT, EXPLORE = "exploit", "explore"


def recommend(current: np.ndarray, forecast: np.ndarray, next_probs: np.ndarray, n: int,
              explore_share: float, min_forecast_share: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(category ids [N, n], scores [N, n], reasons [N, n]) for dense [N, C+1] distributions
    (column 0 = padding, never recommended); every row's categories are distinct."""
    rows, cols = current.shape
    n = min(n, cols - 1)
    n_exploit = n - int(round(n * explore_share))
    exploit = np.where((current > 0) | (forecast >= min_forecast_share), 0.5 * current + 0.5 * forecast, -np.inf)
    exploit[:, 0] = -np.inf
    ex_idx = np.argsort(-exploit, axis=1, kind="stable")[:, :n_exploit]
    ex_score = np.take_along_axis(exploit, ex_idx, 1)
    taken = np.minimum(n_exploit, np.isfinite(ex_score).sum(1))     # exploit slots actually filled
    chosen = np.zeros_like(current, dtype=bool)
    keep = np.arange(n_exploit)[None, :] < taken[:, None]
    np.put_along_axis(chosen, ex_idx, keep, 1)
    explore = np.where(chosen | (current > 0), -np.inf, next_probs)
    explore[:, 0] = -np.inf
    xp_idx = np.argsort(-explore, axis=1, kind="stable")[:, :n]
    xp_score = np.take_along_axis(explore, xp_idx, 1)
    slot = np.arange(n)[None, :]
    is_exploit = slot < taken[:, None]
    xp_pos = np.clip(slot - taken[:, None], 0, n - 1)
    ids = np.where(is_exploit, np.pad(ex_idx, ((0, 0), (0, n - n_exploit)))[:, :n],
                   np.take_along_axis(xp_idx, xp_pos, 1))
    scores = np.where(is_exploit, np.pad(ex_score, ((0, 0), (0, n - n_exploit)))[:, :n],
                      np.take_along_axis(xp_score, xp_pos, 1))
    scores = np.where(np.isfinite(scores), scores, 0.0)
    return ids, scores.astype(np.float32), np.where(is_exploit, EXPLOIT, EXPLORE)
