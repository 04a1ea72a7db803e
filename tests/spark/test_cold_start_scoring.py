"""The cold-start path of ``interest score`` in Spark: who goes on it, what it reads, what it writes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from interest_lib.scoring.cold_start import ColdStart, cold_start_partitions, cold_start_users
from interest_lib.scoring.job import UDF_SCHEMA

pytestmark = [pytest.mark.spark, pytest.mark.card_env]

KEYS = np.array(["", "running shoes", "running socks", "baby strollers", "cots"], dtype=object)
AS_OF = dt.datetime(2026, 3, 2)


def test_users_without_a_window_are_scored_from_what_they_touched(spark, tmp_conf):
    t0 = dt.datetime(2026, 2, 27)
    rows = [  # (user, minutes after t0, category)
        ("new_runner", 0, "running shoes"),
        ("new_parent", 0, "cots"), ("new_parent", 5, "baby strollers"), ("new_parent", 9, "baby strollers"),
        ("old_user", 0, "cots"),                      # has a complete window: window path, not here
        ("future_user", 60 * 24 * 5, "cots"),         # first event after as_of: not eligible yet
    ]
    events = spark.createDataFrame(
        [(f"e{i}", u, t0 + dt.timedelta(minutes=m), c, f"sport/{c}") for i, (u, m, c) in enumerate(rows)],
        "event_id string, user_id string, event_time timestamp, category_id string, category_path string")
    window_users = spark.createDataFrame([("old_user",)], "user_id string")
    tmp_conf.score.cold_start_max_events = 2
    cold = cold_start_users(events, window_users, tmp_conf, AS_OF)
    got = {r.user_id: list(r.touched) for r in cold.collect()}
    assert got == {"new_runner": ["running shoes"], "new_parent": ["baby strollers", "baby strollers"]}

    run, baby = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    model = ColdStart(vectors=np.stack([np.zeros(2), run, run, baby, baby]),
                      popularity=np.array([0, 0.05, 0.05, 0.1, 0.8]), own_weight=0.4, text_weight=0.4,
                      popularity_weight=0.2, temperature=0.05)
    b = spark.sparkContext.broadcast(model)
    out = cold.mapInPandas(cold_start_partitions(b, KEYS, top_k=3, forecast_k=2, n_recs=3, explore_share=0.3),
                           UDF_SCHEMA).toPandas().set_index("user_id")
    assert set(out["scoring_path"]) == {"cold_start"}
    assert list(out.loc["new_runner", "next_categories"])[:2] == ["running shoes", "running socks"]
    # new_parent: own 0.4 * strollers; text 0.4 * (strollers 0.1, cots 0.8 renormalised: same vector,
    # the popularity prior decides); popularity 0.2 -> cots 0.516 > strollers 0.464 > the running ones.
    assert list(out.loc["new_parent", "next_categories"])[:2] == ["cots", "baby strollers"]
    assert np.allclose(out.loc["new_parent", "next_probs"][:2], [0.2 * 0.8 + 0.4 * 0.8 / 0.9,
                                                                 0.4 + 0.4 * 0.1 / 0.9 + 0.2 * 0.1], atol=1e-4)
    assert out.loc["new_runner", "explanation"].startswith("new user: 1 event(s) so far in running shoes")
    assert out.loc["new_runner", "rec_categories"][0] == "running shoes"
    assert out["forecast_stage"].isna().all()
    probs = np.asarray(out.loc["new_parent", "next_probs"])
    assert np.all(np.diff(probs) <= 0) and 0 < probs.sum() <= 1 + 1e-6
