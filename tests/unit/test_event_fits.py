"""Event-level fits kept between scoring runs (score.event_refit_days): a recent enough fit of the
same table and code is reused with its state rebuilt at the new as_of; anything else fits again.
Also the learned ranker served by `interest score` (its distributions, its staple-first ranking)."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from interest_lib.evaluate.event_benchmark import ranker_params
from interest_lib.evaluate.event_protocol import encode_events
from interest_lib.scoring import event_fits
from interest_lib.scoring.event_fits import FitStore
from interest_lib.scoring.event_models import fit_event_model

pytestmark = pytest.mark.unit

WHEN = dt.datetime(2026, 3, 1)


def _households(weeks: int, seed: int = 3, extra: tuple = ()) -> pd.DataFrame:
    """40 households with weekly baskets from 2026-01-01: each basket holds the household's own
    staple and one shared category drawn at random."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(40):
        for week in range(12):  # drawn for 12 weeks always: fewer weeks are the same baskets' first ones
            ts = dt.datetime(2026, 1, 1, 10) + dt.timedelta(days=7 * week, hours=int(rng.integers(0, 8)))
            shared = f"c{int(rng.integers(0, 8))}"
            if week < weeks:
                rows += [(f"u{u}", f"own{u % 8}", ts), (f"u{u}", shared, ts)]
    return pd.DataFrame(rows + list(extra), columns=["user_id", "category", "ts"]).astype({"ts": "datetime64[ns]"})


def _store(tmp_path, table="wh/silver/events_sessionized", days=7.0):
    return FitStore(root=str(tmp_path / "runs"), table=table, events_version=3, max_days=days)


def _vocab(events):
    return np.array(["", *sorted(set(events["category"]))], dtype=object)


USERS = {"user_id": np.array([f"u{u}" for u in range(40)], dtype=object)}


def test_the_ranker_serves_distributions_and_its_kept_fit_is_reused_within_the_refit_days(tmp_path):
    """The ranker's softmax is a distribution over the vocabulary that puts each household's
    staple (in every basket) first; kept, it is reused without training."""
    events = _households(8)  # 8 weeks: the last basket on 2026-02-19, before WHEN
    vocab = _vocab(events)
    lines = []
    # One network without the category identity: this test is about serving and reuse, not the
    # choice. Its holdout (24 of 160 replayed baskets) is too small to choose between identities:
    # at 20 epochs it picked the identity's network, whose per-category biases put a shared
    # category above the staple for 7 of the 40 households.
    plain = ranker_params("category_identity=0,choose_identity=0")
    first = fit_event_model("learned_ranker", events, WHEN, vocab, log_line=lines.append, fits=_store(tmp_path),
                            ranker=plain)
    assert first.fit and any("fit kept at" in line for line in lines)
    assert any("baskets replayed for training" in line for line in lines)
    probs = first.forecast(USERS)
    assert probs.shape == (40, len(vocab)) and (probs >= 0).all() and (probs[:, 0] == 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)  # every category is in the vocabulary
    assert list(vocab[probs.argmax(axis=1)]) == [f"own{u % 8}" for u in range(40)]
    # the same as_of again: the kept network, nothing chosen or trained
    lines.clear()
    again = fit_event_model("learned_ranker", events, WHEN, vocab, log_line=lines.append, fits=_store(tmp_path),
                            ranker=plain)
    assert again.fit == first.fit
    assert any("reusing the fit made at 2026-03-01T00:00:00 (0.0 days" in line for line in lines)
    assert not any("replayed for training" in line or "choosing settings" in line for line in lines)
    assert list(vocab[again.forecast(USERS).argmax(axis=1)]) == [f"own{u % 8}" for u in range(40)]
    # five days and two weeks of baskets later: reused, its state grown by the new events
    later = WHEN + dt.timedelta(days=5)
    lines.clear()
    grown = fit_event_model("learned_ranker", _households(10), later, vocab, log_line=lines.append,
                            fits=_store(tmp_path), ranker=plain)
    assert grown.fit == first.fit and any("5.0 days before as_of" in line for line in lines)
    probs = grown.forecast(USERS)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert list(vocab[probs.argmax(axis=1)]) == [f"own{u % 8}" for u in range(40)]
    assert not np.allclose(probs, first.forecast(USERS))  # the week's baskets moved the state


def test_a_kept_ranker_fit_is_reused_only_by_runs_with_the_same_ranker_settings(tmp_path):
    """score.event_ranker: the network trains with the settings given (one epoch: no line of a
    second), and a fit kept with other settings is not reused, while one with the same is."""
    events = _households(8)
    vocab = _vocab(events)
    lines = []
    one = fit_event_model("learned_ranker", events, WHEN, vocab, log_line=lines.append, fits=_store(tmp_path),
                          ranker=ranker_params("epochs=1"))
    trained = [line for line in lines if "learned_ranker: epoch " in line]
    assert trained and all("epoch 0 " in line for line in trained)
    lines.clear()
    two = fit_event_model("learned_ranker", events, WHEN, vocab, log_line=lines.append, fits=_store(tmp_path),
                          ranker=ranker_params("epochs=2"))
    assert two.fit != one.fit and any("learned_ranker: epoch 1 " in line for line in lines)
    lines.clear()
    again = fit_event_model("learned_ranker", events, WHEN, vocab, log_line=lines.append, fits=_store(tmp_path),
                            ranker=ranker_params("epochs=1"))
    assert again.fit == one.fit and not any("replayed for training" in line for line in lines)
    assert any("reusing the fit made at" in line for line in lines)
    kept = {f.fit_id: f.record["params"]["epochs"] for f in _store(tmp_path).fits("learned_ranker")}
    assert kept == {one.fit: 1, two.fit: 2}


def test_a_fit_is_not_reused_for_an_earlier_as_of_an_older_fit_another_table_or_other_code(tmp_path, monkeypatch):
    events = _households(12)
    vocab = _vocab(events)
    first = fit_event_model("tifu_knn", events, WHEN, vocab, log_line=lambda line: None, fits=_store(tmp_path))

    def refits(when, store):
        lines = []
        fitted = fit_event_model("tifu_knn", events, when, vocab, log_line=lines.append, fits=store)
        chose = any("choosing settings" in line for line in lines)
        assert chose == (fitted.fit != first.fit)
        return chose

    assert not refits(WHEN + dt.timedelta(days=7), _store(tmp_path))  # exactly score.event_refit_days
    assert refits(WHEN - dt.timedelta(hours=1), _store(tmp_path))  # a backfill never reads a later fit
    assert refits(WHEN + dt.timedelta(days=7, seconds=1), _store(tmp_path, days=7))
    assert refits(WHEN, _store(tmp_path, table="other/silver/events_sessionized"))
    monkeypatch.setattr(event_fits, "code_fingerprint", lambda: "changed-code")
    assert refits(WHEN, _store(tmp_path))


def test_kept_settings_are_the_ones_chosen_and_only_the_newest_fits_are_kept(tmp_path, monkeypatch):
    events = _households(12)
    vocab = _vocab(events)
    store = _store(tmp_path)
    fit_event_model("tifu_knn", events, WHEN, vocab, log_line=lambda line: None, fits=store)
    (kept,) = store.fits("tifu_knn")
    chosen, best = kept.settings()
    assert set(chosen) >= {"tifu_knn", "personal_frequency"} and best in chosen
    # restored from its settings, the model scores as the fitted one does
    log = encode_events(events[events["ts"] < pd.Timestamp(WHEN)])
    fresh = chosen["tifu_knn"].build().fit(log, len(log))
    restored = event_fits.restore_model(kept, log, len(log))
    now = int(pd.Timestamp(WHEN).value)
    np.testing.assert_array_equal(restored.scores(np.arange(40), now), fresh.scores(np.arange(40), now))
    monkeypatch.setattr(event_fits, "KEEP_FITS", 2)
    for day in (3, 2, 1):  # three older fits (each too old for the next as_of): one new fit each
        fit_event_model("tifu_knn", events, WHEN - dt.timedelta(days=10 * day), vocab, log_line=lambda line: None,
                        fits=store)
    assert [f.record["as_of"] for f in store.fits("tifu_knn")] == ["2026-02-19T00:00:00", "2026-03-01T00:00:00"]
    # a backfill's fit, older than every kept one, is not removed by its own writing
    old = fit_event_model("tifu_knn", events, WHEN - dt.timedelta(days=40), vocab, log_line=lambda line: None,
                          fits=store)
    assert [f.fit_id for f in store.fits("tifu_knn")][0] == old.fit
    assert [f.record["as_of"] for f in store.fits("tifu_knn")][1:] == ["2026-02-19T00:00:00", "2026-03-01T00:00:00"]


def test_a_restored_ranker_is_the_fitted_one_with_its_neighbours_found_at_as_of(tmp_path):
    """Restoring keeps the network bit for bit and rebuilds every feature as the fit left it,
    except TIFU-KNN's neighbours: the fit found them at its internal cut (and kept them fixed
    through the replay), a restored state finds them at its own as_of."""
    from interest_lib.models.event_ranker import FEATURES, LearnedRanker, RankerParams

    log = encode_events(_households(9))
    fitted = LearnedRanker(RankerParams(epochs=2, switch_weight=1.0), log_line=lambda line: None).fit(log, len(log))
    kept = _store(tmp_path).save("learned_ranker", WHEN, fitted, None, log.categories, log_line=lambda line: None)
    restored = event_fits.restore_model(kept, log, len(log))
    assert restored.params == fitted.params and restored.switch_weight == fitted.switch_weight
    assert restored.members == fitted.members and len(restored._nets) == 1
    assert set(restored._nets[0]) == set(fitted._nets[0])
    for key, value in fitted._nets[0].items():
        np.testing.assert_array_equal(restored._nets[0][key], value)
    users, now = np.arange(log.num_users), int(pd.Timestamp(WHEN).value)
    a, b = fitted.state.features(users, now), restored.state.features(users, now)
    others = [i for i, name in enumerate(restored.state.names) if name != "tifu_neighbours"]
    np.testing.assert_allclose(b[..., others], a[..., others], rtol=1e-6, atol=1e-6)
    assert not np.allclose(b[..., FEATURES.index("tifu_neighbours")], a[..., FEATURES.index("tifu_neighbours")])
    fitted.state.tifu.neighbours = restored.state.tifu.neighbours
    np.testing.assert_allclose(restored.scores(users, now), fitted.scores(users, now), rtol=1e-6, atol=1e-6)


def test_restored_network_follows_categories_by_name_and_a_new_category_gets_the_mean_row(tmp_path):
    from interest_lib.models.event_ranker import CATEGORY_ROWS, LearnedRanker, RankerParams

    events = _households(9)
    log = encode_events(events)
    ranker = LearnedRanker(RankerParams(epochs=1, switch_weight=1.0), log_line=lambda line: None).fit(log, len(log))
    network = ranker.network()
    # a later log with a category that sorts first: every old category's index moves by one
    newcomer = [("u0", "aaa", dt.datetime(2026, 3, 2))]
    later = encode_events(_households(9, extra=newcomer))
    assert later.categories[0] == "aaa" and list(later.categories[1:]) == list(log.categories)
    restored = LearnedRanker(RankerParams(epochs=1), log_line=lambda line: None).restore(
        network, log.categories, later, len(later))
    for key in CATEGORY_ROWS:
        np.testing.assert_array_equal(restored._nets[0][key][0], network[key][0])  # padding
        np.testing.assert_array_equal(restored._nets[0][key][2:], network[key][1:])
        np.testing.assert_allclose(restored._nets[0][key][1], network[key][1:].mean(axis=0))
    assert restored.scores(np.arange(later.num_users), int(later.ts[-1]) + 1).shape == (later.num_users, later.num_categories + 1)


def test_a_kept_blend_restores_both_networks_and_scores_as_it_did(tmp_path):
    from interest_lib.models.event_ranker import LearnedRanker, RankerParams

    log = encode_events(_households(9))
    parts = [LearnedRanker(RankerParams(epochs=1, switch_weight=w, category_identity=identity),
                           log_line=lambda line: None).fit(log, len(log)) for identity, w in ((True, 1.1), (False, 1.3))]
    blend = LearnedRanker(RankerParams(epochs=1), log_line=lambda line: None).restore(
        {f"{i}/{k}": v for i, part in enumerate(parts) for k, v in part.network().items()}, log.categories, log, len(log))
    blend.members = [{"category_identity": True, "switch_weight": 1.1}, {"category_identity": False, "switch_weight": 1.3}]
    kept = _store(tmp_path).save("learned_ranker", WHEN, blend, None, log.categories, log_line=lambda line: None)
    assert kept.record["members"] == blend.members
    restored = event_fits.restore_model(kept, log, len(log))
    assert restored.members == blend.members and restored.switch_weight is None and restored.category_identity is None
    assert len(restored._nets) == 2
    for mine, theirs in zip(restored._nets, blend._nets):
        for key, value in theirs.items():
            np.testing.assert_array_equal(mine[key], value)
    users, now = np.arange(log.num_users), int(pd.Timestamp(WHEN).value)
    np.testing.assert_allclose(restored.scores(users, now), blend.scores(users, now), rtol=1e-9, atol=1e-9)
