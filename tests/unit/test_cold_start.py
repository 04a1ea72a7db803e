"""Cold-start scores (interest_lib.scoring.cold_start) on data whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interest_lib.scoring.cold_start import ColdStart, category_vectors, cold_start_scores

pytestmark = pytest.mark.unit

#: ids: 1 running shoes, 2 running socks, 3 baby strollers, 4 cots
KEYS = np.array(["", "running shoes", "running socks", "baby strollers", "cots"], dtype=object)


def vectors():
    """Running items point one way, baby items another (two items per category)."""
    items = pd.Series(["running shoes", "running shoes", "running socks", "running socks",
                       "baby strollers", "baby strollers", "cots", "cots", "not in vocab"])
    run, baby = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    noise = np.array([0.0, 0.0, 0.1])
    vec = np.stack([run, run + noise, run - noise, run, baby, baby + noise, baby - noise, baby, [0, 0, 1.0]])
    return category_vectors(KEYS, items, vec)


def test_category_vectors_are_unit_means_of_their_items():
    v = vectors()
    assert np.allclose(np.linalg.norm(v[1:], axis=1), 1.0) and np.all(v[0] == 0)
    assert v[1] @ v[2] > 0.99 and abs(v[1] @ v[3]) < 0.01


def test_a_runner_gets_running_categories_before_the_popular_baby_ones():
    pop = np.array([0, 0.1, 0.1, 0.5, 0.3])
    model = ColdStart(vectors=vectors(), popularity=pop, own_weight=0.4, text_weight=0.4,
                      popularity_weight=0.2, temperature=0.05)
    p = model.scores([np.array([1]), np.array([3, 3])])
    assert np.allclose(p.sum(1), 1.0) and np.all(p[:, 0] == 0)
    assert list(np.argsort(-p[0])[:2]) == [1, 2]  # own, then the text neighbour, over popularity
    assert list(np.argsort(-p[1])[:2]) == [3, 4]
    # The text term is what lifts socks above strollers: without it popularity wins.
    q = cold_start_scores([np.array([1])], vectors(), pop, 0.4, 0.0, 0.2, 0.05)
    assert q[0, 3] > q[0, 2]


def test_exact_mixture_without_text_and_for_a_user_without_known_categories():
    pop = np.array([9.0, 1, 1, 2, 0])  # padding's count is ignored
    p = cold_start_scores([np.array([2, 2, 4]), np.array([0, 99])], None, pop, 0.5, 0.3, 0.5, 0.1)
    own = np.array([0, 0, 2 / 3, 0, 1 / 3])
    assert np.allclose(p[0], 0.5 * own + 0.5 * np.array([0, .25, .25, .5, 0]))
    assert np.allclose(p[1], [0, .25, .25, .5, 0])  # unknown ids only: popularity alone
