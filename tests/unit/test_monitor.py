"""``interest monitor``'s decision on drift series whose answer is known: below the best baseline
for N weeks in a row -> exit 1 (retrain); fewer, or above -> 0; no series -> 0 with a message
that says so; the lower-is-better direction of js; a week evaluated twice keeps its newest rows.
The last tests run the command on a real Delta gold.model_metrics written by delta-rs."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from interest_lib.monitor.drift import drift_rows, latest_week
from interest_lib.monitor.trend import drift_points, judge

pytestmark = pytest.mark.unit


def _series(values, metric="ndcg@10", task="migration", slice_="all", start=dt.datetime(2026, 1, 5)):
    """Drift rows: one week per (model value, baseline value) pair."""
    rows = []
    for i, (m, b) in enumerate(values):
        week = start + dt.timedelta(days=7 * i)
        for kind, name, v in (("model", "augru", m), ("baseline", "markov", b)):
            rows.append({"evaluation_id": f"drift-{i}", "model": name, "kind": kind, "task": task,
                         "slice": slice_, "metric": metric, "value": v, "rows": 100,
                         "evaluated_at": week + dt.timedelta(days=8), "ci_low": v - 0.01, "ci_high": v + 0.01,
                         "series": "drift", "week_start": week})
    return pd.DataFrame(rows)


def _verdict(values, weeks=2, metric="ndcg@10"):
    return judge(drift_points(_series(values, metric), "migration", "all", metric), weeks, "migration", "all", metric)


def test_below_the_best_baseline_for_n_weeks_in_a_row_asks_for_a_retrain():
    report = _verdict([(0.30, 0.20), (0.18, 0.20), (0.17, 0.21)], weeks=2)
    assert (report.retrain, report.exit_code, report.below_streak) == (True, 1, 2)
    assert [p.below for p in report.points] == [False, True, True]
    assert report.message.startswith("RETRAIN") and "2 week(s)" in report.message
    assert "week of 2026-01-19: augru 0.1700 [0.1600, 0.1800] vs markov 0.2100" in report.render()


def test_fewer_weeks_below_or_a_recovery_keeps_exit_zero():
    assert _verdict([(0.30, 0.20), (0.18, 0.20)], weeks=2).exit_code == 0      # one week below
    recovered = _verdict([(0.10, 0.20), (0.10, 0.20), (0.25, 0.20)], weeks=2)  # two below, then above
    assert (recovered.exit_code, recovered.below_streak) == (0, 0)
    assert _verdict([(0.10, 0.20)] * 3, weeks=4).exit_code == 0                # 3 < 4 weeks
    assert _verdict([(0.10, 0.20)] * 3, weeks=3).exit_code == 1


def test_lower_is_better_for_js():
    assert _verdict([(0.30, 0.20), (0.31, 0.20)], weeks=2, metric="js").exit_code == 1  # higher js = worse
    assert _verdict([(0.10, 0.20), (0.12, 0.20)], weeks=2, metric="js").exit_code == 0


def test_an_empty_series_says_so_and_exits_zero():
    for frame in (None, pd.DataFrame(), _series([(0.1, 0.2)], metric="mrr")):
        report = judge(drift_points(frame, "migration", "all", "ndcg@10"), 2, "migration", "all", "ndcg@10")
        assert report.exit_code == 0 and report.points == []
        assert "no drift series yet for migration all ndcg@10" in report.message
    old_table = _series([(0.1, 0.2)]).drop(columns=["series", "week_start", "ci_low", "ci_high"])
    assert drift_points(old_table, "migration", "all", "ndcg@10") == []  # a table from before drift rows
    with pytest.raises(ValueError, match="monitor.weeks"):
        judge([], 0, "migration", "all", "ndcg@10")


def test_a_week_evaluated_twice_keeps_its_newest_evaluation_and_test_rows_are_ignored():
    frame = _series([(0.10, 0.20)])
    again = frame.assign(evaluation_id="drift-again", evaluated_at=frame.evaluated_at + dt.timedelta(days=1),
                         value=[0.30, 0.20])
    test_rows = frame.assign(series="test", evaluation_id="eval", value=[0.0, 0.9])
    points = drift_points(pd.concat([frame, again, test_rows]), "migration", "all", "ndcg@10")
    assert [(p.model_value, p.baseline_value, p.below) for p in points] == [(0.30, 0.20, False)]


def test_drift_rows_pick_the_best_baseline_and_bootstrap_each_value():
    users = np.repeat(np.arange(50), 2)
    model = np.repeat(np.tile([1.0, 0.0], 25), 2)       # mean 0.5; both rows of a user alike
    per = {"model": model, "markov": np.full(100, 0.6), "popularity": np.full(100, 0.2)}
    week = dt.datetime(2026, 2, 2)
    rows = drift_rows(per, users, "augru", "run-1", "migration", "all", "hr@10", week, 7, n_boot=1000)
    assert [(r["model"], r["kind"], r["series"], r["week_start"]) for r in rows] == [
        ("augru", "model", "drift", week), ("markov", "baseline", "drift", week)]
    m, b = rows
    assert m["value"] == pytest.approx(0.5) and m["ci_low"] < 0.5 < m["ci_high"] and m["rows"] == 100
    # clustered by user: about 0.5 ± 1.96·0.5/sqrt(50 users) = ±0.14, not ±0.10 as 100 independent rows
    assert 0.24 < m["ci_high"] - m["ci_low"] < 0.32
    assert (b["value"], b["ci_low"], b["ci_high"]) == pytest.approx((0.6, 0.6, 0.6))  # no spread, no width
    assert m["evaluation_id"] == b["evaluation_id"] and m["run_id"] == "run-1" and m["table_version"] == 7
    # lower is better for js: the smallest baseline is the bar
    js = drift_rows({"model": np.full(4, 0.3), "a": np.full(4, 0.5), "b": np.full(4, 0.2)}, np.arange(4),
                    "gru", "r", "evolution", "all", "js", week, 1, n_boot=50)
    assert js[1]["model"] == "b"
    assert drift_rows({"model": np.zeros(0)}, np.zeros(0), "gru", "r", "evolution", "all", "js", week, 1) == []


def test_the_latest_week_is_the_latest_cutoff():
    assert latest_week({"cutoff": np.array([5, 9, 9, 3])}).tolist() == [False, True, True, False]


def test_interest_monitor_exits_1_on_a_drifted_delta_table_and_0_without_one(tmp_path, capsys):
    from deltalake import write_deltalake

    from interest_lib.cli import main
    from interest_lib.storage.catalog import GOLD_MODEL_METRICS, table_path

    warehouse = tmp_path / "warehouse"
    args = ["monitor", "--set", f"storage.warehouse={warehouse}", "--set", "monitor.weeks=2"]
    assert main(args) == 0
    assert "no drift series yet" in capsys.readouterr().out
    frame = _series([(0.30, 0.20), (0.18, 0.20), (0.17, 0.21)])
    write_deltalake(table_path(str(warehouse), GOLD_MODEL_METRICS), frame.assign(
        evaluated_at=frame.evaluated_at.astype("datetime64[us]"), week_start=frame.week_start.astype("datetime64[us]")))
    assert main(args) == 1
    assert "RETRAIN" in capsys.readouterr().out
    assert main([*args, "--set", "monitor.weeks=3"]) == 0
