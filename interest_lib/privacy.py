"""Private aggregates: the minimum group size and the optional ε-differential-privacy mode.

Published counts (gold.migration_flows) follow two rules:

1. **Minimum group size**: a cell counting fewer than ``migration.min_group_size`` users is not
   published (k-anonymity style suppression; the setting must be >= 2).
2. **ε-DP** (``privacy.dp_epsilon`` set): each user's contribution is bounded to
   ``privacy.dp_max_cells_per_user`` cells (their most recent migrations), so adding or removing
   one user changes the vector of cell counts by at most that much in L1 (the sensitivity Δ).
   Each count gets discrete Laplace (two-sided geometric) noise of scale Δ/ε from OpenDP, whose
   privacy map confirms the ε spent. Noised counts below the minimum group size are suppressed
   *after* noising. Because the set of candidate cells comes from the data, releasing only cells
   above the threshold is (ε, δ)-DP with δ <= Δ · P(noise >= min_group_size - 1)
   (:func:`threshold_delta`); both are stored with each row of the table version that used them
   (``dp_epsilon``, ``dp_delta``; null = exact counts). Every release spends its ε again
   (sequential composition): the budget spent across releases is the sum over table versions.

OpenDP draws from a cryptographically secure generator and cannot be seeded, as a DP mechanism
should be; tests check the noise's distribution, not its values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class DpSettings:
    """One release's differential-privacy parameters."""

    epsilon: float
    """Privacy loss of the release (pure ε of the noise)."""
    max_cells_per_user: int = 1
    """Cells one user may count in (the L1 sensitivity of the count vector)."""

    def __post_init__(self):
        if not (isinstance(self.epsilon, (int, float)) and math.isfinite(self.epsilon) and self.epsilon > 0):
            raise ValueError(f"privacy.dp_epsilon must be a positive finite number, got {self.epsilon!r}")
        if self.max_cells_per_user < 1:
            raise ValueError(f"privacy.dp_max_cells_per_user must be >= 1, got {self.max_cells_per_user}")

    @property
    def sensitivity(self) -> int:
        """L1 sensitivity of the bounded count vector."""
        return self.max_cells_per_user

    @property
    def scale(self) -> float:
        """Noise scale b = Δ/ε (P(x) ∝ exp(-|x| / b))."""
        return self.sensitivity / self.epsilon


def dp_settings(epsilon: Optional[float], max_cells_per_user: int = 1) -> Optional[DpSettings]:
    """The DP settings of a release, or None when ``epsilon`` is None (exact counts)."""
    return None if epsilon is None else DpSettings(float(epsilon), int(max_cells_per_user))


def check_min_group_size(value: int, key: str = "migration.min_group_size") -> int:
    """``value`` if it is a usable minimum group size (>= 2), else a ValueError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ValueError(f"{key} must be an integer >= 2 (a smaller value publishes groups of a single "
                         f"user), got {value!r}")
    return value


def _measurement(dp: DpSettings):
    import opendp.prelude as opendp

    opendp.enable_features("contrib")
    return opendp.m.make_laplace(opendp.vector_domain(opendp.atom_domain(T=int)), opendp.l1_distance(T=int),
                                 scale=dp.scale)


def epsilon_spent(dp: DpSettings) -> float:
    """The ε OpenDP's privacy map gives the noise for the sensitivity (equals ``dp.epsilon``)."""
    return float(_measurement(dp).map(dp.sensitivity))


def noisy_counts(counts: np.ndarray, dp: DpSettings) -> np.ndarray:
    """``counts`` (integers) plus independent discrete Laplace noise of scale Δ/ε each."""
    values = [int(v) for v in np.asarray(counts).ravel()]
    if not values:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(_measurement(dp)(values), dtype=np.int64).reshape(np.shape(counts))


def discrete_laplace_abs_mean(scale: float) -> float:
    """E|X| of discrete Laplace noise of ``scale`` b: 2q / (1 - q²), q = exp(-1/b) (→ b as b grows)."""
    q = math.exp(-1.0 / scale)
    return 2 * q / (1 - q * q)


def discrete_laplace_std(scale: float) -> float:
    """Standard deviation of discrete Laplace noise of ``scale`` b: sqrt(2q) / (1 - q) (→ √2·b)."""
    q = math.exp(-1.0 / scale)
    return math.sqrt(2 * q) / (1 - q)


def threshold_delta(dp: DpSettings, min_group_size: int) -> float:
    """δ of publishing only noised cells >= ``min_group_size``: a cell that exists because of one
    user (true count 1, at most Δ such cells) is published with probability P(X >= τ - 1)."""
    q = math.exp(-1.0 / dp.scale)
    tail = q ** (min_group_size - 1) / (1 + q)  # P(X >= m) for discrete Laplace, m >= 1
    return min(1.0, dp.sensitivity * tail)


def publish_counts(counts: np.ndarray, min_group_size: int, dp: Optional[DpSettings] = None) -> tuple[np.ndarray, np.ndarray]:
    """(published values, keep mask): exact counts, or noised ones when ``dp`` is set; cells
    below ``min_group_size`` (after noising) are not kept."""
    counts = np.asarray(counts, dtype=np.int64)
    values = counts if dp is None else noisy_counts(counts, dp)
    return values, values >= min_group_size
