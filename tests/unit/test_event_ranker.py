"""The learned ranker of the event-level protocol on planted logs with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interest_lib.evaluate.event_protocol import encode_events, evaluate_model, make_targets, time_cut
from interest_lib.evaluate.metrics import metrics_from_ranks
from interest_lib.models.event_baselines import PersonalFrequency
from interest_lib.models.event_ranker import FEATURES, FeatureState, LearnedRanker, RankerParams

pytestmark = pytest.mark.unit

T0 = pd.Timestamp("2024-01-01")


def replenishment_log(n_users=40, n_days=30, seed=0):
    """Every user shops daily: a staple category every day, and three categories bought in turn,
    one every day (``p0`` on days 0, 3, 6, ..., ``p1`` on 1, 4, ..., ``p2`` on 2, 5, ...), each user
    with their own three. Decayed frequency cannot tell which of the three is due; the time since
    each was last bought can."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        staple = f"s{u % 4}"
        cycle = rng.choice(12, size=3, replace=False)
        start = int(rng.integers(0, 3))
        for d in range(n_days):
            ts = T0 + pd.Timedelta(days=d, hours=int(rng.integers(8, 20)))
            rows.append((u, staple, ts))
            rows.append((u, f"p{cycle[(d + start) % 3]}", ts))
    return pd.DataFrame(rows, columns=["user_id", "category", "ts"])


def ndcg(model, log, targets) -> float:
    return metrics_from_ranks(evaluate_model(model, log, targets), (10,))["ndcg@10"]


def test_ranker_learns_replenishment_cycles_that_frequency_cannot_see():
    log = encode_events(replenishment_log())
    targets = make_targets(log, time_cut(log.ts))
    frequency = ndcg(PersonalFrequency(decay=0.9, unit="basket", binary=True), log, targets)
    ranker = LearnedRanker(RankerParams(epochs=10, batch=16, hidden=32, embedding=4, tifu_k=20, threads=1), log_line=lambda s: None)
    learned = ndcg(ranker, log, targets)
    # Two targets per basket: the staple and the due category. The best any model can do is the
    # staple 1st and the due category 2nd. Frequency ranks the due category 4th (the two others
    # were bought more recently); the ranker learns it is due.
    best = (1 + 1 / np.log2(3)) / 2
    assert frequency == pytest.approx((1 + 1 / np.log2(5)) / 2, abs=0.02)
    assert learned == pytest.approx(best, abs=0.01)
    assert ranker.history and ranker.history[-1]["loss"] < ranker.history[0]["loss"]


def test_features_of_a_basket_never_include_the_basket_itself():
    log = encode_events(replenishment_log(n_users=5, n_days=6))
    n = log.upto(int(log.ts[len(log) // 2]))
    state = FeatureState(tifu_k=2).fit(log, n)
    col = FEATURES.index("log_count")
    now = int(log.ts[n])
    before = state.features(np.arange(5), now)[:, :, col].copy()
    state.observe(log.user[n:n + 1], log.category[n:n + 1], now)
    after = state.features(np.arange(5), now)
    u, c = int(log.user[n]), int(log.category[n])
    assert after[u, c, col] == pytest.approx(np.log1p(np.expm1(before[u, c]) + 1))
    assert np.isfinite(after).all()


def test_ranker_refuses_a_history_too_short_to_learn_from():
    log = encode_events(replenishment_log(n_users=2, n_days=3))
    with pytest.raises(ValueError, match="baskets to learn from"):
        LearnedRanker(log_line=lambda s: None).fit(log, log.upto(int(log.ts[-1])))
