"""Event-level models served by `interest score` (score.migration = event:<name>): fitted on the
events before as_of only, their probabilities mapped onto the scoring vocabulary, looked up by user."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from interest_lib.scoring import event_models
from interest_lib.scoring.event_models import EventScores, fit_event_model

pytestmark = pytest.mark.unit

WHEN = dt.datetime(2026, 3, 1)


def _events(rows):
    return pd.DataFrame(rows, columns=["user_id", "category", "ts"]).astype({"ts": "datetime64[ns]"})


def test_popularity_counts_only_events_before_as_of_on_the_vocabulary_ids(monkeypatch):
    day = lambda d: dt.datetime(2026, 2, d)  # noqa: E731
    events = _events([("u1", "milk", day(1)), ("u1", "milk", day(2)), ("u2", "milk", day(2)),
                      ("u2", "bread", day(3)), ("u3", "eggs", day(4)), ("u3", "tea", day(5)),
                      # at and after as_of: not read (else "tea" would lead)
                      ("u1", "tea", WHEN), ("u2", "tea", WHEN + dt.timedelta(hours=1)),
                      ("u3", "tea", WHEN + dt.timedelta(days=2))])
    # the vocabulary's own order, one key without events, and "eggs" missing from it
    vocab = np.array(["", "tea", "zzz", "bread", "milk"], dtype=object)
    fitted = fit_event_model("popularity", events, WHEN, vocab, log_line=lambda line: None)
    probs = fitted.forecast({"user_id": np.array(["u2", "u3", "u1"], dtype=object)})
    # counts before as_of: milk 3, bread 1, eggs 1 (not in the vocabulary), tea 1, of 6 events
    expected = np.array([0, 1, 0, 1, 3]) / 6
    assert probs.shape == (3, 5)
    np.testing.assert_allclose(probs, np.tile(expected, (3, 1)), rtol=1e-6)
    # over DENSE_BYTES only the most probable categories are kept, most probable first (ties:
    # vocabulary order), the rest read as zero
    monkeypatch.setattr(event_models, "DENSE_BYTES", 0)
    top2 = fit_event_model("popularity", events, WHEN, vocab, log_line=lambda line: None, keep=2)
    assert list(vocab[top2.ids[0]]) == ["milk", "tea"]
    np.testing.assert_allclose(top2.forecast({"user_id": np.array(["u3"])}), [[0, 1 / 6, 0, 0, 3 / 6]], rtol=1e-6)


def test_a_user_the_model_never_saw_is_named_not_scored_as_zeros():
    scores = EventScores(users={"u1": 0}, ids=np.array([[2, 1]]), probs=np.array([[0.7, 0.3]], dtype=np.float32),
                         width=3)
    np.testing.assert_allclose(scores.forecast({"user_id": np.array(["u1"])}), [[0, 0.3, 0.7]])
    with pytest.raises(ValueError, match="'ghost'"):
        scores.forecast({"user_id": np.array(["u1", "ghost"])})


def test_unknown_model_and_empty_history_are_clear_errors():
    vocab = np.array(["", "milk"], dtype=object)
    events = _events([("u1", "milk", dt.datetime(2026, 2, 1))])
    with pytest.raises(ValueError, match="unknown event model 'nope'; known: learned_ranker"):
        fit_event_model("nope", events, WHEN, vocab)
    with pytest.raises(ValueError, match="no events before 2026-01-01"):
        fit_event_model("popularity", events, dt.datetime(2026, 1, 1), vocab)
    with pytest.raises(ValueError, match="event:tifu_knn: .*too little history"):
        fit_event_model("tifu_knn", events, WHEN, vocab)

