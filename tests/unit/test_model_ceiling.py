"""bench/model_ceiling.py's seen-through oracle, headroom share and the event-level models'
scoring at each row's cut-off, on known answers."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from interest_lib.evaluate.event_protocol import encode_events

from tests.helpers import load_bench

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def ceiling():
    return load_bench("model_ceiling")


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


def test_seen_through_sessions_counts_one_draw_per_focus_kept_and_per_fresh_interaction(ceiling):
    one = np.array([[0.0, 1.0, 0.0, 0.0]])  # every draw lands on category 1
    prior = np.array([0.0, 0.0, 0.0, 1.0])  # the pseudo-draw on category 3: shares tell the draws

    def draws(per_session, seeds):
        return [d / (1 - d) for d in (est[0, 1] for est in ceiling.seen_through_sessions(
            one, [np.array(per_session)], prior, seeds=seeds))]

    none = ceiling.seen_through_sessions(one, [np.array([], dtype=int)], prior, seeds=1)[0]
    np.testing.assert_allclose(none, prior[None, :])
    # sessions of one interaction: that interaction is the focus or a fresh draw, one draw either way
    np.testing.assert_allclose(draws([1, 1, 1, 1, 1], seeds=5), 5.0)
    # one session of 20 interactions: the focus (kept by some interaction, 1 - 0.5^20) + 10 fresh on average
    counts = np.array(draws([20], seeds=400))
    assert ((counts >= 1) & (counts <= 21)).all()
    assert counts.mean() == pytest.approx(11.0, abs=0.5)  # standard error of the mean 0.11
    # many sessions: the estimate is the mixture
    mix = np.array([[0.0, 0.7, 0.2, 0.1]])
    many = ceiling.seen_through_sessions(mix, [np.full(20_000, 3)], prior, seeds=1)[0]
    np.testing.assert_allclose(many, mix, atol=0.01)


def test_headroom_share_counts_from_the_best_baseline_to_the_oracle(ceiling):
    assert ceiling.headroom_share(0.45, 0.40, 0.50) == pytest.approx(0.5)
    assert ceiling.headroom_share(0.38, 0.40, 0.50) == pytest.approx(-0.2)
    assert ceiling.headroom_share(-0.085, -0.09, -0.08) == pytest.approx(0.5)  # JS, negated


def test_history_sessions_gives_the_cut_off_window_as_it_was_and_redraws_the_rest(ceiling):
    from types import SimpleNamespace

    from interest_lib.features.windows import ORIGIN

    conf = SimpleNamespace(features=SimpleNamespace(window_days=7, step_days=7))
    end = ORIGIN + dt.timedelta(days=10 * 7 + 7)  # the end of window 10, the row's cut-off
    at = lambda days: np.datetime64(end + dt.timedelta(days=days), "us")  # noqa: E731
    interactions = pd.DataFrame({
        "user_id": ["u"] * 7,
        "event_time": [at(-20), at(-20 + 0.01), at(-9), at(-3), at(-3 + 0.01), at(-3 + 0.02), at(1)],
        "session_id": ["old1", "old1", "old2", "new", "new", "new", "after"],
        "category": [1, 2, 1, 3, 3, 5, 4],
    })
    rows = {"user_id": np.array(["u"]), "window": np.array([10])}
    sessions, actual = ceiling.history_sessions(interactions, rows, conf, 5)
    np.testing.assert_array_equal(sessions[0], [2, 1, 3])  # every session before the cut-off, oldest first
    assert not actual.any()
    sessions, actual = ceiling.history_sessions(interactions, rows, conf, 5, window_as_it_was=True)
    np.testing.assert_array_equal(sessions[0], [2, 1])  # the older sessions, to be redrawn
    np.testing.assert_array_equal(actual[0], [0, 0, 0, 1, 0, 1])  # the window's session: 3 once, 5 once
    # the window's categories count as they were, beside the redrawn ones
    prior = np.array([0.0, 0.2, 0.2, 0.2, 0.2, 0.2])
    only_window = ceiling.seen_through_sessions(np.array([[0.0, 1, 0, 0, 0, 0]]), [np.array([], dtype=int)], prior,
                                                seeds=1, actual=actual)[0]
    np.testing.assert_allclose(only_window, (actual + prior) / 3)


def test_switch_frontier_trades_the_cut_off_window_for_the_switch_slice(ceiling):
    # one switch row (label 2, outside the window {1}) and one stay row (label 1); same scores
    scores = np.array([[0.0, 0.6, 0.3, 0.1], [0.0, 0.6, 0.3, 0.1]])
    in_window = np.array([[False, True, False, False]] * 2)
    rows = {"next_category": np.array([2, 1]), "is_switch": np.array([True, False])}
    second = 1 / np.log2(3)  # NDCG@10 of a target ranked second
    frontier = ceiling.switch_frontier(scores, in_window, rows, divisors=(1, 4))
    np.testing.assert_allclose(frontier, [[(second + 1) / 2, second], [(1 + second) / 2, 1.0]])
    # log-scores rank and divide as their probabilities do
    np.testing.assert_allclose(ceiling.switch_frontier(np.log(scores + 1e-12), in_window, rows, divisors=(1, 4)),
                               frontier)
    # non-negative scores with categories a model cannot score (-inf) divide as they are
    unscored = np.where(scores == 0.1, -np.inf, scores)
    np.testing.assert_allclose(ceiling.switch_frontier(unscored, in_window, rows, divisors=(1, 4)), frontier)


def test_switch_at_reads_the_frontier_at_one_overall_level(ceiling):
    frontier = np.array([[0.80, 0.40], [0.70, 0.50], [0.60, 0.55]])
    assert ceiling.switch_at(frontier, 0.80) == pytest.approx(0.40)
    assert ceiling.switch_at(frontier, 0.75) == pytest.approx(0.45)
    assert ceiling.switch_at(frontier, 0.65) == pytest.approx(0.525)
    assert np.isnan(ceiling.switch_at(frontier, 0.85))  # above even the undivided scores
    # a frontier that bends back: the best switch NDCG at or above the level counts
    assert ceiling.switch_at(np.array([[0.80, 0.40], [0.78, 0.60], [0.70, 0.50]]), 0.75) == pytest.approx(0.60)


def test_matched_switch_compares_at_the_lower_overall_of_the_forecaster_and_the_best_baseline(ceiling):
    f = lambda *points: np.array(points)  # noqa: E731
    frontiers = {"b1": f([0.8, 0.40], [0.7, 0.50]), "b2": f([0.6, 0.45], [0.5, 0.50]),
                 "oracle": f([0.9, 0.60], [0.7, 0.80]),
                 "below": f([0.75, 0.44], [0.65, 0.50]), "above": f([0.85, 0.42], [0.8, 0.47], [0.7, 0.50]),
                 "redraws": [f([0.8, 0.50]), f([0.8, 0.60])]}
    # below the best baseline (b1, 0.8): b1 is divided to 0.75 (0.45); b2 never reaches 0.75 and
    # counts as it is (0.45); the oracle at 0.75 is 0.75
    level, value, best, oracle, share = ceiling.matched_switch(frontiers, "below", ["b1", "b2"], "oracle")
    assert (level, value, best, oracle) == pytest.approx((0.75, 0.44, 0.45, 0.75))
    assert share == pytest.approx(-0.01 / 0.30)
    # above it: the forecaster is divided to the baseline's 0.8
    assert ceiling.matched_switch(frontiers, "above", ["b1", "b2"], "oracle") == pytest.approx(
        (0.8, 0.47, 0.45, 0.70, 0.02 / 0.25))
    # an oracle's redraws count their mean
    assert ceiling.matched_switch(frontiers, "redraws", ["b1", "b2"], "oracle")[1] == pytest.approx(0.55)


class _Counts:
    """A protocol model whose scores are the counts of each user's categories it has seen."""

    def fit(self, log, n):
        self.counts = np.zeros((log.num_users, log.num_categories + 1))
        np.add.at(self.counts, (log.user[:n], log.category[:n]), 1)
        return self

    def observe(self, users, categories, now):
        np.add.at(self.counts, (users, categories), 1)

    def scores(self, users, now):
        return self.counts[users].copy()


def test_event_models_score_each_row_from_the_events_strictly_before_its_cut_off(ceiling):
    rng = np.random.default_rng(0)
    ts = pd.Timestamp("2026-01-05") + pd.to_timedelta(rng.integers(0, 28 * 24, 400), unit="h")
    events = pd.DataFrame({"user_id": rng.choice(["a", "b", "c"], 400), "category": rng.choice(["x", "y", "z"], 400),
                           "ts": ts})
    at_cutoffs = pd.DataFrame({"user_id": ["a", "b", "c", "c"], "category": ["x", "y", "z", "x"],
                               "ts": pd.to_datetime(["2026-01-12", "2026-01-12", "2026-01-19", "2026-01-26"])})
    events = pd.concat([events, at_cutoffs], ignore_index=True)  # seen only by later cut-offs
    log = encode_events(events)
    # rows at weekly cut-offs (midnight, where events also fall) in any order, one before the fit point
    cutoff = pd.to_datetime(["2026-01-26", "2026-01-12", "2026-01-19", "2026-01-26", "2026-01-12"])
    users = np.array([0, 1, 2, 2, 0])
    start = int(np.searchsorted(log.ts, cutoff.min().value, side="left"))
    got = ceiling.scores_at_cutoffs(_Counts().fit(log, start), log, start, users, cutoff.asi8)
    for row, (u, c) in enumerate(zip(users, cutoff)):
        before = events[(events["user_id"] == log.users[u]) & (events["ts"] < c)]
        expected = [0] + [int((before["category"] == k).sum()) for k in log.categories]
        assert got[row].tolist() == expected
