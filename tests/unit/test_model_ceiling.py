"""bench/model_ceiling.py's seen-through oracle and headroom share, on known answers."""

import importlib.util

import numpy as np
import pytest

from tests.stores import REPO

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def ceiling():
    spec = importlib.util.spec_from_file_location("model_ceiling", REPO / "bench" / "model_ceiling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seen_through_draws_is_the_prior_without_events_and_the_mixture_with_many(ceiling):
    mix = np.array([[0.0, 0.7, 0.2, 0.1], [0.0, 0.0, 0.5, 0.5]])
    prior = np.array([0.0, 0.25, 0.25, 0.5])
    none = ceiling.seen_through_draws(mix, np.array([0, 0]), prior)
    np.testing.assert_allclose(none, np.stack([prior, prior]))
    many = ceiling.seen_through_draws(mix, np.array([200_000, 200_000]), prior)
    np.testing.assert_allclose(many, mix, atol=0.005)  # seeded; a share's standard error at n = 200,000 is at most 0.0011
    few = ceiling.seen_through_draws(mix, np.array([3, 3]), prior)
    np.testing.assert_allclose(few.sum(axis=1), 1.0)
    assert (few[:, 0] == 0).all()
    # three draws plus one pseudo-event: every share is a multiple of 1/4 plus the prior's quarter
    np.testing.assert_allclose(((few - prior / 4) * 4) % 1, 0.0, atol=1e-9)


def test_headroom_share_counts_from_the_best_baseline_to_the_oracle(ceiling):
    assert ceiling.headroom_share(0.45, 0.40, 0.50) == pytest.approx(0.5)
    assert ceiling.headroom_share(0.38, 0.40, 0.50) == pytest.approx(-0.2)
    assert ceiling.headroom_share(-0.085, -0.09, -0.08) == pytest.approx(0.5)  # JS, negated
