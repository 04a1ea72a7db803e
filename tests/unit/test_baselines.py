"""Baselines on tiny hand-built batches whose right answer is known (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from interest_lib.evaluate.metrics import ranking_metrics, sparse_to_dense, top_k
from interest_lib.models.baselines import (
    BASELINES, DecayedFrequencyBaseline, MarkovBaseline, PersistenceBaseline, PersonalFrequencyBaseline,
    PopularityBaseline, fit_baselines, last_event,
)

pytestmark = pytest.mark.unit

C, L, W, K = 6, 6, 2, 3


def make_batch(events, nxt, windows=None):
    """A batch shaped like gold.training_sequences: events left-padded to L; ``windows`` per row is a
    list of (category, share) pairs, oldest first, left-padded to W*K (the last K = cut-off window)."""
    n = len(events)
    ev = np.zeros((n, L), np.int64)
    for i, e in enumerate(events):
        if e:
            ev[i, -len(e):] = e
    win_c, win_s = np.zeros((n, W * K), np.int64), np.zeros((n, W * K))
    for i, w in enumerate(windows or []):
        win_c[i, -len(w):], win_s[i, -len(w):] = zip(*w)
    nxt = np.asarray(nxt, np.int64)
    return {
        "ev_category": ev, "win_category": win_c, "win_share": win_s, "next_category": nxt,
        "is_switch": np.zeros(n, bool), "next_dist_category": np.zeros((n, K), np.int64),
        "next_dist_share": np.zeros((n, K)), "next_stage": np.zeros(n, np.int64),
    }


def cycle_batch(n: int, start: int = 0):
    """Rows of the deterministic cycle 1 -> 2 -> 3 -> 1, with category 4 as a frequent distractor
    in the oldest positions so that it is the most popular category overall."""
    cyc = np.array([1, 2, 3])
    events, nxt = [], []
    for i in range(start, start + n):
        seq = list(cyc[(i + np.arange(3)) % 3])
        events.append([4, 4, 4] + seq)
        nxt.append(int(cyc[(i + 3) % 3]))
    return make_batch(events, nxt)


@pytest.fixture(scope="module")
def train():
    return cycle_batch(30)


def test_every_baseline_returns_well_formed_scores_and_forecasts(train):
    test = cycle_batch(7, start=1)
    test["ev_category"][0] = 0  # a row without events
    fitted = fit_baselines(train, C)
    assert set(fitted) == set(BASELINES) == {"popularity", "decayed_frequency", "markov", "persistence",
                                             "personal_frequency"}
    for name, model in fitted.items():
        assert model.name == name
        scores, fc = model.next_scores(test), model.forecast(test)
        assert scores.shape == fc.shape == (7, C + 1), name
        assert np.isfinite(scores).all() and (scores[:, 0] <= 0).all(), name
        np.testing.assert_allclose(fc.sum(axis=1), 1.0, err_msg=name)
        assert (fc[:, 0] == 0).all() and (fc >= 0).all(), name


def test_fit_returns_self_and_popularity_counts_events_and_labels():
    batch = make_batch([[1, 1, 2], [0]], [3, 1])
    model = PopularityBaseline()
    assert model.fit(batch, 4) is model
    np.testing.assert_allclose(model.popularity, [0, 3 / 5, 1 / 5, 1 / 5, 0])
    np.testing.assert_allclose(model.next_scores(batch), np.tile(model.popularity, (2, 1)))


def test_markov_learns_a_deterministic_cycle_where_popularity_fails(train):
    test = cycle_batch(9, start=5)
    markov = MarkovBaseline().fit(train, C)
    pop = PopularityBaseline().fit(train, C)
    assert ranking_metrics(markov.next_scores(test), test["next_category"])["hr@1"] == 1.0
    assert ranking_metrics(pop.next_scores(test), test["next_category"])["hr@1"] == 0.0  # 4 is most popular
    assert markov.transitions[1].argmax() == 2 and markov.transitions[3].argmax() == 1
    assert (markov.transitions[1, 1:5] > 0).all()  # smoothing keeps unseen transitions possible
    np.testing.assert_allclose(markov.transitions[5], pop.popularity)  # unseen source -> popularity
    no_events = make_batch([[]], [1])
    np.testing.assert_allclose(markov.next_scores(no_events)[0], pop.popularity)


def test_last_event_handles_padding():
    ev = np.array([[0, 0, 3, 2], [0, 0, 0, 0], [5, 0, 0, 0]])
    assert last_event(ev).tolist() == [2, 0, 5]


def test_decayed_frequency_favours_recent_categories(train):
    batch = make_batch([[1, 1, 2]], [2])
    recent = DecayedFrequencyBaseline(half_life_events=1).fit(train, C).next_scores(batch)
    assert recent[0].argmax() == 2  # 2 (weight 1) beats 1 (0.5 + 0.25)
    np.testing.assert_allclose(recent[0, 1:3] / recent[0, 1:3].sum(), [0.75 / 1.75, 1 / 1.75], rtol=1e-5)
    frequent = DecayedFrequencyBaseline(half_life_events=100).fit(train, C).next_scores(batch)
    assert frequent[0].argmax() == 1  # a long half-life is close to plain counting
    # categories absent from the row are ordered by popularity (the prior), not tied
    assert recent[0, 4] > recent[0, 3] > 0


def test_persistence_forecasts_the_cut_off_window(train):
    # an older window (all category 5), then the cut-off window (the last K entries)
    windows = [[(0, 0.0), (0, 0.0), (5, 1.0), (1, 0.5), (3, 0.3), (2, 0.2)]]
    batch = make_batch([[1, 2]], [2], windows=windows)
    model = PersistenceBaseline().fit(train, C)
    assert model.top_k == K  # read from next_dist_category's width
    fc = model.forecast(batch)
    np.testing.assert_allclose(fc[0], [0, 0.5, 0.2, 0.3, 0, 0, 0])
    np.testing.assert_allclose(fc, sparse_to_dense(batch["win_category"][:, -K:], batch["win_share"][:, -K:], C))
    assert top_k(model.next_scores(batch), 3)[0][0].tolist() == [1, 3, 2]


def test_fit_in_row_chunks_equals_one_pass_and_reads_only_fit_columns(monkeypatch):
    """Fitting counts FIT_CHUNK_ROWS rows at a time (bounded memory on large train splits): with
    chunks of 2 rows the popularity and transitions equal one pass, from FIT_COLUMNS alone."""
    import interest_lib.models.baselines as B

    rng = np.random.default_rng(3)
    batch = make_batch([list(rng.integers(1, C + 1, size=rng.integers(0, L + 1))) for _ in range(9)],
                       rng.integers(1, C + 1, size=9))
    whole = {name: cls().fit(batch, C) for name, cls in BASELINES.items()}
    monkeypatch.setattr(B, "FIT_CHUNK_ROWS", 2)
    chunked = {name: cls().fit({k: batch[k] for k in B.FIT_COLUMNS}, C) for name, cls in BASELINES.items()}
    for name in BASELINES:
        np.testing.assert_allclose(chunked[name].popularity, whole[name].popularity)
    np.testing.assert_allclose(chunked["markov"].transitions, whole["markov"].transitions)
    assert whole["popularity"].popularity[0] == 0 and abs(whole["popularity"].popularity.sum() - 1) < 1e-12


def test_personal_frequency_sums_decayed_window_profiles_plus_event_shares_plus_prior(train):
    """Known answer: windows [(1, .5), (2, .5)] then [(3, 1.0)] (the cut-off window), decay 0.5:
    1 and 2 get 0.25 each, 3 gets 1, normalised to 1/6, 1/6, 2/3; events [4, 4] add 0.5 x share 1
    on 4 before renormalising; the prior adds 0.01 x popularity."""
    row = make_batch([[4, 4]], [1], [[(1, 0.5), (2, 0.5), (0, 0.0), (3, 1.0), (0, 0.0), (0, 0.0)]])
    b = PersonalFrequencyBaseline(window_decay=0.5, events_weight=0.0, prior=0.0).fit(train, C)
    np.testing.assert_allclose(b.next_scores(row)[0], [0, 1 / 6, 1 / 6, 2 / 3, 0, 0, 0])
    b.events_weight, b.prior = 0.5, 0.01
    expected = np.array([0, 1 / 6, 1 / 6, 2 / 3, 0.5, 0, 0]) / 1.5 + 0.01 * b.popularity
    np.testing.assert_allclose(b.next_scores(row)[0], expected)
    # The forecast keeps the top K (= 3, the labels' width) and sums to 1.
    forecast = b.forecast(row)[0]
    assert (forecast > 0).sum() == K and abs(forecast.sum() - 1) < 1e-12 and forecast[3] == forecast.max()


def test_personal_frequency_chooses_its_decay_on_validation(train):
    """Rows whose label is the category of the *oldest* window (a staple bought every few weeks)
    beside a cut-off window led by another category: only no decay (1.0, the grid's last value;
    ties go to the first) ranks the staple first, so choose() must find it, and the longer memory
    beats persistence there. Rows whose label leads the cut-off window while the older window
    holds the runner-up: only the steepest decay keeps the leader first."""
    windows = [(1, 1.0), (0, 0), (0, 0), (2, 0.97), (3, 0.03), (0, 0)]
    old = make_batch([[]] * 4, [1] * 4, [windows] * 4)
    b = PersonalFrequencyBaseline().fit(train, C).choose(old)
    assert b.window_decay == 1.0
    ndcg = lambda m, batch: ranking_metrics(m.next_scores(batch), batch["next_category"])["ndcg@10"]  # noqa: E731
    assert ndcg(b, old) == 1.0 > ndcg(PersistenceBaseline().fit(train, C), old)
    recent = make_batch([[]] * 4, [2] * 4, [[(3, 1.0), (0, 0), (0, 0), (2, 0.92), (3, 0.08), (0, 0)]] * 4)
    chosen = PersonalFrequencyBaseline().fit(train, C).choose(recent)
    assert chosen.window_decay == 0.8 and ndcg(chosen, recent) == 1.0
    chosen.window_decay = 0.9
    assert ndcg(chosen, recent) < 1.0
    # fit_baselines chooses when given a validation split, keeps the defaults otherwise.
    assert fit_baselines(train, C, old)["personal_frequency"].window_decay == 1.0
    assert fit_baselines(train, C)["personal_frequency"].window_decay == PersonalFrequencyBaseline().window_decay


def test_every_baseline_can_be_named_as_a_score_source():
    """score.migration / score.evolution accept each baseline by name (conf validation keeps its
    own list so that loading a configuration imports no numpy): the two lists agree."""
    from interest_lib.conf import SCORE_SOURCES

    assert set(SCORE_SOURCES) - {"model"} == set(BASELINES)
