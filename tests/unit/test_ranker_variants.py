"""bench/ranker_variants.py's cross-fitted oracle: each half of the households is scored by a
network that never saw its own answers, on hand-made baskets."""

from types import SimpleNamespace

import numpy as np
import pytest

from tests.helpers import load_bench

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def variants():
    return load_bench("ranker_variants")


class _RecordingRanker:
    """Trains by remembering the users of its rows; scores every row with the sum of those users."""

    params = SimpleNamespace(category_identity=True)

    def __init__(self):
        self.trained_on = []

    def _train(self, X, Y, torch, identity):
        self.trained_on.append(sorted(set(X[:, 0, 0].astype(int))))

    def _predict(self, X):
        return np.full((len(X), 3), float(sum(self.trained_on[-1])))


def test_each_half_is_scored_by_the_network_of_the_other_half(variants):
    users = np.array([0, 1, 2, 3, 4, 5, 1, 2])
    X = np.zeros((len(users), 3, 1), dtype=np.float32)
    X[:, 0, 0] = users  # each basket carries its user, so the fake network knows whom it learned from
    ranker = _RecordingRanker()
    scores = variants.crossfit_scores(ranker, X, np.ones((len(users), 3)), SimpleNamespace(basket_user=users), None)
    assert ranker.trained_on == [[1, 3, 5], [0, 2, 4]]  # never a household's own answers
    even, odd = users % 2 == 0, users % 2 == 1
    np.testing.assert_array_equal(scores[even, 0], 9.0)  # scored by the odd users' network
    np.testing.assert_array_equal(scores[odd, 0], 6.0)


def test_crossfit_is_read_from_the_variant_beside_the_ranker_settings(variants):
    label, params, extra, insample, crossfit = variants.parse_variant("cf:crossfit=1,hidden=32")
    assert (label, params.hidden, extra, insample, crossfit) == ("cf", 32, [], False, True)
