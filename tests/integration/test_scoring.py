"""Scoring on the small pipeline run: gold tables readable without Spark (as BI reads them),
scored users = eligible users, reruns replace their own as-of date, baselines and event-level
models can be scored."""

import datetime as dt

import numpy as np
import pytest
from pyspark.sql import functions as F

from interest_lib.conf import ConfigError
from interest_lib.features.windows import WINDOW_END
from interest_lib.scoring.job import load_predictors, run_score
from interest_lib.scoring.recommend import EXPLOIT, EXPLORE
from interest_lib.storage.catalog import (
    GOLD_MIGRATION_FLOWS, GOLD_MODEL_METRICS, GOLD_RECOMMENDATIONS, GOLD_USER_INTEREST_SCORES,
    SILVER_EVENTS_SESSIONIZED, SILVER_USER_INTEREST_WINDOWS,
)
from tests.helpers import assert_valid_window_scores, read_as_bi

# Not rerun in the card env: tests/card scores there with the card path's runs.
pytestmark = [pytest.mark.integration]


def test_every_eligible_user_is_scored_once_with_valid_outputs(pipeline):
    _settings, tables, conf = pipeline
    scores = read_as_bi(tables.path(GOLD_USER_INTEREST_SCORES))
    as_of = scores["as_of"].iloc[0].to_pydatetime().replace(tzinfo=None)
    # Eligible: users with a complete window by as_of (all have events before it).
    eligible = (tables.read(SILVER_USER_INTEREST_WINDOWS).filter(F.col(WINDOW_END) <= F.lit(as_of))
                .select("user_id").distinct().count())
    assert len(scores) == scores["user_id"].nunique()
    # Users with a complete window go the window path; any other user with events, the cold-start path.
    cold = scores["scoring_path"] == "cold_start"
    assert set(scores["scoring_path"]) <= {"window", "cold_start"}
    assert (~cold).sum() == eligible > 100
    assert scores.loc[cold, "forecast_stage"].isna().all()
    scores = scores[~cold]
    assert_valid_window_scores(scores, conf.score)
    assert scores["migration_model"].iloc[0] == conf.train.migration_model
    assert scores["current_interests"].map(len).gt(0).mean() > 0.9
    # Each user's reason names the predicted category and stays short.
    assert all(e.startswith(f"next {c[0][:39]}") and len(e) < 160
               for e, c in zip(scores["explanation"], scores["next_categories"]))


def test_recommendations_mix_exploit_and_explore(pipeline):
    _settings, tables, conf = pipeline
    recs = read_as_bi(tables.path(GOLD_RECOMMENDATIONS))
    scores = read_as_bi(tables.path(GOLD_USER_INTEREST_SCORES))
    n = conf.score.recommendations
    per_user = recs.groupby("user_id")
    assert per_user.size().eq(n).all() and per_user["category"].nunique().eq(n).all()
    assert set(recs["reason"]) == {EXPLOIT, EXPLORE}
    assert recs["reason"].eq(EXPLORE).mean() >= conf.score.explore_share - 1e-9
    # Explored categories are outside the user's current interests (the cut-off profile's top-K).
    current = {r.user_id: {i["category"] for i in r.current_interests} for r in scores.itertuples()}
    assert scores["current_interests"].map(len).le(conf.features.top_k).all()
    explored = recs[recs["reason"] == EXPLORE]
    assert not any(c in current.get(u, set()) for u, c in zip(explored["user_id"], explored["category"]))
    assert per_user["rank"].apply(lambda r: sorted(r) == list(range(1, n + 1))).all()
    # Each recommendation's reason matches its kind.
    assert recs["explanation"].str.len().lt(160).all()
    assert recs.loc[recs["reason"] == EXPLORE, "explanation"].str.startswith("to explore: P(next) ").all()
    assert recs.loc[recs["reason"] == EXPLOIT, "explanation"].str.contains(r"^(?:current|forecast) interest: ").all()


def test_gold_tables_are_readable_without_spark(pipeline):
    _settings, tables, _conf = pipeline
    for name, columns in {
        GOLD_USER_INTEREST_SCORES: {"user_id", "as_of", "next_categories", "next_probs", "p_switch",
                                    "forecast_categories", "forecast_shares", "current_interests",
                                    "explanation", "migration_version", "training_table_version", "score_run_id"},
        GOLD_RECOMMENDATIONS: {"user_id", "as_of", "rank", "category", "score", "reason", "explanation"},
        GOLD_MIGRATION_FLOWS: {"from_category", "to_category", "users", "dp_epsilon", "dp_delta"},
        GOLD_MODEL_METRICS: {"model", "kind", "task", "slice", "metric", "value"},
    }.items():
        frame = read_as_bi(tables.path(name))
        assert len(frame) > 0, name
        assert columns <= set(frame.columns), (name, columns - set(frame.columns))


def test_rescoring_replaces_its_as_of_date_and_baselines_can_be_scored(pipeline):
    _settings, tables, conf = pipeline
    before = tables.read(GOLD_USER_INTEREST_SCORES).count()
    conf.score.migration, conf.score.evolution = "markov", "persistence"
    try:
        report = run_score(tables.spark, conf, tables)
    finally:
        conf.score.migration = conf.score.evolution = "model"
    assert report.scored_users == report.eligible_users == before
    rows = tables.read(GOLD_USER_INTEREST_SCORES).collect()
    assert len(rows) == before  # same as-of date: replaced, not appended
    assert {r.migration_model for r in rows} == {"markov"} and {r.forecast_stage for r in rows} == {None}
    assert tables.read(GOLD_RECOMMENDATIONS).count() == before * conf.score.recommendations


def test_an_event_level_model_is_served_from_the_events_before_as_of(pipeline):
    """score.migration = event:popularity: every window-path user's next categories are the most
    frequent categories of silver.events_sessionized before as_of, with their shares as
    probabilities, and P(switch) is the mass outside the user's current interests. The stream,
    which scores without a fixed as_of, refuses event-level models by name."""
    _settings, tables, conf = pipeline
    conf.score.migration = "event:popularity"
    try:
        with pytest.raises(ConfigError, match="the stream cannot serve it"):
            load_predictors(conf, tables)  # no as_of: the stream's call
        report = run_score(tables.spark, conf, tables)
    finally:
        conf.score.migration = "model"
    assert report.scored_users == report.eligible_users
    scores = read_as_bi(tables.path(GOLD_USER_INTEREST_SCORES))
    scores = scores[scores["scoring_path"] == "window"]
    assert len(scores) > 100 and set(scores["migration_model"]) == {"event:popularity"}
    as_of = scores["as_of"].iloc[0]
    events = read_as_bi(tables.path(SILVER_EVENTS_SESSIONIZED))
    shares = events.loc[events["event_time"] < as_of, "category_id"].value_counts(normalize=True)
    kth = shares.sort_values(ascending=False).iloc[conf.score.top_k]  # the best share left out
    for row in scores.itertuples():
        expected = shares.reindex(row.next_categories).to_numpy()
        np.testing.assert_allclose(row.next_probs, expected, rtol=1e-5)
        assert min(row.next_probs) >= kth - 1e-7 and list(row.next_probs) == sorted(row.next_probs, reverse=True)
        current = [i["category"] for i in row.current_interests]
        assert row.p_switch == pytest.approx(1 - shares.reindex(current).fillna(0).sum(), abs=1e-5)


def test_an_event_level_fit_is_kept_in_the_run_store_and_reused_by_a_later_run(pipeline, tmp_path):
    """score.migration = event:tifu_knn: the first run chooses its settings and keeps the fit under
    train.store; a run two days later reuses it (its version names the same fit); with
    score.event_refit_days 0 nothing is kept or reused."""
    _settings, tables, conf = pipeline
    when = read_as_bi(tables.path(GOLD_USER_INTEREST_SCORES))["as_of"].iloc[0].to_pydatetime().replace(tzinfo=None)
    saved = conf.score.migration, conf.score.evolution, conf.train.store, conf.score.event_refit_days
    # an empty run store of its own: evolution from a baseline
    conf.score.migration, conf.score.evolution, conf.train.store = "event:tifu_knn", "persistence", str(tmp_path / "runs")
    try:
        first, _ = load_predictors(conf, tables, when)
        later, _ = load_predictors(conf, tables, when + dt.timedelta(days=2))
        conf.score.event_refit_days = 0
        uncached, _ = load_predictors(conf, tables, when)
    finally:
        conf.score.migration, conf.score.evolution, conf.train.store, conf.score.event_refit_days = saved
    silver = f"{SILVER_EVENTS_SESSIONIZED}@{tables.version(SILVER_EVENTS_SESSIONIZED)}"
    fit_id = first.version.removeprefix(f"{silver} fit ")
    assert first.version == f"{silver} fit {fit_id}" and fit_id.startswith(f"{when:%Y%m%dT%H%M%S}-")
    assert later.version == first.version and uncached.version == silver
    assert sorted(p.name for p in (tmp_path / "runs" / "event-models" / "tifu_knn").iterdir()) == [fit_id]
    assert (tmp_path / "runs" / "event-models" / "tifu_knn" / fit_id / "fit.json").exists()
