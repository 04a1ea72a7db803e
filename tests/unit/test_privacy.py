"""Private aggregates: the minimum group size is enforced, and the DP noise has the scale ε asks for."""

import math

import numpy as np
import pytest

from interest_lib.conf import ConfigError, load_config
from interest_lib.privacy import (
    DpSettings, check_min_group_size, discrete_laplace_abs_mean, discrete_laplace_std, dp_settings,
    epsilon_spent, noisy_counts, publish_counts, threshold_delta,
)

pytestmark = pytest.mark.unit

DRAWS = 40_000


def exact_moments(scale: float) -> tuple[float, float, float]:
    """E|X|, E[X²] and E[X⁴] of discrete Laplace noise of ``scale``, summed over its pmf."""
    q = math.exp(-1.0 / scale)
    k = np.arange(-60 * math.ceil(scale) - 60, 60 * math.ceil(scale) + 61, dtype=float)
    pmf = (1 - q) / (1 + q) * q ** np.abs(k)
    return float((pmf * np.abs(k)).sum()), float((pmf * k**2).sum()), float((pmf * k**4).sum())


@pytest.mark.parametrize("epsilon,cells", [(0.5, 1), (1.0, 1), (2.0, 1), (1.0, 3)])
def test_noise_scale_matches_sensitivity_over_epsilon(epsilon, cells):
    dp = DpSettings(epsilon, cells)
    assert dp.scale == pytest.approx(cells / epsilon)
    noise = noisy_counts(np.full(DRAWS, 100), dp) - 100
    assert noise.dtype == np.int64
    # The closed forms agree with the moments summed over the pmf ...
    abs_mean, second, fourth = exact_moments(dp.scale)
    assert discrete_laplace_abs_mean(dp.scale) == pytest.approx(abs_mean, rel=1e-9)
    assert discrete_laplace_std(dp.scale) == pytest.approx(math.sqrt(second), rel=1e-9)
    # ... and the draws have those moments, each within 5 of its own standard errors (the noise
    # comes from OpenDP's secure sampler, which takes no seed; a fixed 3% band at b = 0.5 is only
    # 3.4 standard errors wide and failed once in CI). A wrong scale (b off by 10%) moves every
    # one of these by about 20 standard errors at 40,000 draws.
    se = 1 / math.sqrt(DRAWS)
    assert abs(noise.mean()) < 5 * math.sqrt(second) * se
    assert abs(np.abs(noise).mean() - abs_mean) < 5 * math.sqrt(second - abs_mean**2) * se
    assert abs((noise.astype(float) ** 2).mean() - second) < 5 * math.sqrt(fourth - second**2) * se
    # The exact moments are the continuous Laplace's (E|X| = b) up to the integer rounding, once
    # b >= 2 (exact: 1.919 at b = 2).
    if dp.scale >= 2:
        assert abs_mean == pytest.approx(cells / epsilon, rel=0.05)
    # OpenDP's own privacy map: the noise spends exactly ε at sensitivity Δ.
    assert epsilon_spent(dp) == pytest.approx(epsilon, rel=1e-9)


def test_more_privacy_means_more_noise():
    spread = [np.abs(noisy_counts(np.zeros(DRAWS, int), DpSettings(e))).mean() for e in (2.0, 0.5, 0.125)]
    assert spread[0] < spread[1] < spread[2]
    assert spread[2] / spread[1] == pytest.approx(4.0, rel=0.1)


def test_threshold_delta_is_the_tail_of_the_noise():
    dp = DpSettings(1.0, 1)
    noise = noisy_counts(np.zeros(200_000, int), dp)
    # A cell of one user is published when 1 + noise >= 5.
    assert threshold_delta(dp, 5) == pytest.approx((1 + noise >= 5).mean(), rel=0.1)
    # Two cells per user at the same noise scale (ε doubled with Δ): twice the chance.
    assert threshold_delta(DpSettings(2.0, 2), 5) == pytest.approx(2 * threshold_delta(dp, 5))
    assert threshold_delta(dp, 10) < threshold_delta(dp, 5)


def test_published_counts_exact_without_dp_and_never_below_the_threshold_with_it():
    counts = np.array([1, 2, 4, 5, 6, 40, 3, 5])
    values, keep = publish_counts(counts, 5)
    assert values.tolist() == counts.tolist() and keep.tolist() == [c >= 5 for c in counts]
    for _ in range(50):
        values, keep = publish_counts(counts, 5, DpSettings(0.5))
        assert (values[keep] >= 5).all() and (values[~keep] < 5).all()
    assert publish_counts(np.array([], int), 5, DpSettings(1.0))[0].shape == (0,)


def test_settings_are_checked():
    assert dp_settings(None) is None
    assert dp_settings(2, 3) == DpSettings(2.0, 3)
    for bad in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="privacy.dp_epsilon"):
            DpSettings(bad)
    with pytest.raises(ValueError, match="dp_max_cells_per_user"):
        DpSettings(1.0, 0)
    for bad in (1, 0, -3, 2.5, True):
        with pytest.raises(ValueError, match="migration.min_group_size"):
            check_min_group_size(bad)
    assert check_min_group_size(2) == 2


def test_configuration_refuses_unsafe_privacy_settings():
    for value in ("1", "0", "-5"):
        with pytest.raises(ConfigError, match="migration.min_group_size.*>= 2"):
            load_config(overrides=[f"migration.min_group_size={value}"])
    for value in ("0", "-0.5", "nan", "inf"):
        with pytest.raises(ConfigError, match="privacy.dp_epsilon"):
            load_config(overrides=[f"privacy.dp_epsilon={value}"])
    with pytest.raises(ConfigError, match="privacy.dp_max_cells_per_user"):
        load_config(overrides=["privacy.dp_max_cells_per_user=0"])
    conf = load_config()
    assert conf.privacy.dp_epsilon is None and conf.migration.min_group_size == 5
    assert load_config(overrides=["privacy.dp_epsilon=0.5"]).privacy.dp_epsilon == 0.5
