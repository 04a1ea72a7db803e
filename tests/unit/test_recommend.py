"""Exploit / explore recommendations on hand-made distributions whose answer is known."""

import numpy as np
import pytest

from interest_lib.scoring.recommend import EXPLOIT, EXPLORE, recommend

pytestmark = pytest.mark.unit


def _dist(c, values):
    row = np.zeros(c + 1)
    for k, v in values.items():
        row[k] = v
    return row


def test_exploit_current_and_forecast_then_explore_likely_migrations():
    c = 8
    current = np.array([_dist(c, {1: 0.6, 2: 0.4}), _dist(c, {3: 1.0})])
    forecast = np.array([_dist(c, {1: 0.5, 2: 0.3, 4: 0.2}), _dist(c, {3: 0.97, 5: 0.03})])
    probs = np.array([_dist(c, {1: 0.3, 2: 0.2, 6: 0.3, 7: 0.15, 8: 0.05}), _dist(c, {3: 0.5, 8: 0.3, 7: 0.2})])
    ids, scores, reasons = recommend(current, forecast, probs, n=5, explore_share=0.4)
    # Row 0: three exploit candidates (1, 2 current; 4 forecast >= 5%) fill the 3 exploit slots in
    # exploit-score order; explore takes the most likely categories outside the profile.
    assert ids[0].tolist() == [1, 2, 4, 6, 7]
    assert reasons[0].tolist() == [EXPLOIT] * 3 + [EXPLORE] * 2
    assert scores[0, 0] == pytest.approx(0.55)
    # Row 1: one exploit candidate (5 has only 3% of the forecast); exploration fills the rest.
    assert ids[1, 0] == 3 and reasons[1].tolist() == [EXPLOIT] + [EXPLORE] * 4
    assert ids[1, 1:3].tolist() == [8, 7]
    for row in ids:
        assert len(set(row.tolist())) == len(row) and 0 not in row


def test_explore_share_zero_and_one():
    c = 6
    current = np.array([_dist(c, {1: 0.5, 2: 0.5})])
    probs = np.array([_dist(c, {1: 0.4, 3: 0.3, 4: 0.3})])
    ids, _, reasons = recommend(current, current.copy(), probs, n=4, explore_share=1.0)
    assert set(reasons[0]) == {EXPLORE} and not {1, 2} & set(ids[0].tolist())
    ids, _, reasons = recommend(current, current.copy(), probs, n=4, explore_share=0.0)
    assert ids[0, :2].tolist() in ([1, 2], [2, 1]) and reasons[0, 2] == EXPLORE  # only 2 interests to exploit
