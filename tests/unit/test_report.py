"""The run report's data gathering on small frames with known answers, and the page on a
warehouse with missing and empty tables (real Delta tables written by delta-rs, no Spark)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from interest_lib.conf import load_config
from interest_lib.report import gather
from interest_lib.report.job import build_page, write_report, write_run_record
from interest_lib.report.page import Section, render_page
from interest_lib.storage.catalog import GOLD_MIGRATION_FLOWS, GOLD_MODEL_METRICS, table_path

pytestmark = [pytest.mark.unit, pytest.mark.card_env]  # run again in .venv-card (pyarrow 14, pandas 2.2)

W1, W2 = pd.Timestamp("2026-01-05", tz="UTC"), pd.Timestamp("2026-01-12", tz="UTC")


def _windows():
    return pd.DataFrame({
        "user_id": ["u1", "u2", "u1", "u3"],
        "window_start": [W1, W1, W2, W2],
        "n_events": [4, 2, 3, 0],  # u3's window has no event: not active
        "window_categories": [np.array(["a", "b"]), np.array(["a"]), np.array(["b", "c"]), np.array(["a"])],
        "window_shares": [np.array([0.5, 0.5]), np.array([1.0]), np.array([0.75, 0.25]), np.array([1.0])],
    })


def test_heatmap_is_the_mean_share_of_the_weeks_active_users_per_row():
    rows_of = {"a": "F1", "b": "F2", "c": "F2"}
    heat = gather.interest_heatmap(_windows(), rows_of)
    got = {(r.window_start, r.row): (round(r.share, 6), r.users) for r in heat.itertuples()}
    # week 1: u1 (a .5, b .5) and u2 (a 1) -> F1 (0.5 + 1) / 2, F2 0.5 / 2; week 2: u1 alone (u3 inactive)
    assert got == {(W1, "F1"): (0.75, 2), (W1, "F2"): (0.25, 2), (W2, "F2"): (1.0, 1)}
    assert heat.groupby("window_start").share.sum().round(9).tolist() == [1.0, 1.0]
    # a week with fewer active users than the minimum group is left out
    assert set(gather.interest_heatmap(_windows(), rows_of, min_users=2).window_start) == {W1}
    # without a mapping, categories are their own rows
    assert set(gather.interest_heatmap(_windows(), {}).row) == {"a", "b", "c"}


def test_category_rows_take_the_most_frequent_path_cut_to_the_level():
    items = pd.DataFrame({"category_id": ["c1", "c1", "c1", "c2", None],
                          "category_path": ["home/kitchen/pans", "home/kitchen/pans", "garden/x/y", "baby/toys/rattles", "z"]})
    assert gather.category_rows(items, 1) == {"c1": "home", "c2": "baby"}
    assert gather.category_rows(items, 2) == {"c1": "home/kitchen", "c2": "baby/toys"}
    assert gather.category_rows(items, 0) == {} and gather.category_rows(None, 1) == {}
    assert gather.row_label("c9", None, 1) == "c9"


def test_migration_marks_hide_cells_under_the_minimum_group():
    migrations = pd.DataFrame({"window_start": [W1] * 3 + [W2], "to_category": ["a", "a", "b", "a"]})
    marks, hidden = gather.migration_marks(migrations, {"a": "F1", "b": "F1"}, min_group_size=2)
    assert marks.to_dict("records") == [{"window_start": W1, "row": "F1", "migrations": 3}]
    assert hidden == 1  # W2's single migration
    marks, hidden = gather.migration_marks(migrations, {}, min_group_size=3)
    assert marks.empty and hidden == 4


def test_flow_periods_sum_published_cells_and_drop_small_ones_again():
    flows = pd.DataFrame({"window_start": [W1, W1, W2, W2], "from_category": ["x", "y", "x", "x"],
                          "to_category": ["y", "x", "y", "z"], "users": [5, 7, 6, 2]})
    cells = gather.flow_periods(flows, min_group_size=5)
    total = cells[cells.period == gather.ALL_PERIODS]
    assert {(r.source, r.target): r.users for r in total.itertuples()} == {("x", "y"): 11, ("y", "x"): 7}
    assert list(cells.period.unique()) == [gather.ALL_PERIODS, "2026-01-05", "2026-01-12"]
    assert ("x", "z") not in {(r.source, r.target) for r in cells.itertuples()}  # 2 < 5
    assert gather.flow_periods(flows, min_group_size=50).empty


def test_stage_counts_fill_every_stage_of_every_window():
    stages = pd.DataFrame({"window_start": [W1, W1, W2], "stage": ["initial", "initial", "stable"]})
    counts = gather.stage_counts(stages)
    assert len(counts) == 2 * 4
    got = {(r.window_start, r.stage): r.interests for r in counts.itertuples()}
    assert got[(W1, "initial")] == 2 and got[(W2, "stable")] == 1 and got[(W2, "initial")] == 0
    assert list(counts.stage[:4]) == list(gather.STAGES)


def test_metric_intervals_are_conservative_and_use_the_newest_evaluation():
    low, high = gather.mean_ci(0.5, 100)
    assert (round(low, 4), round(high, 4)) == (0.402, 0.598)  # 0.5 ± 1.96 * 0.05
    assert gather.mean_ci(0.0, 10) == (0.0, 0.0)
    assert all(math.isnan(v) for v in gather.mean_ci(0.3, 0))
    # any [0, 1] variable with mean 0.3 has variance <= 0.3 * 0.7: the bound covers a sampled mean
    rng = np.random.default_rng(0)
    x = rng.beta(0.6, 1.4, size=400)
    low, high = gather.mean_ci(float(x.mean()), 400)
    half_normal = 1.96 * x.std(ddof=1) / 20
    assert high - low >= 2 * half_normal
    metrics = pd.DataFrame({
        "evaluation_id": ["old", "new", "new"], "model": ["m", "markov", "m"],
        "kind": ["model", "baseline", "model"], "task": ["migration"] * 3, "slice": ["all"] * 3,
        "metric": ["ndcg@10"] * 3, "value": [0.9, 0.5, 0.6], "rows": [100, 100, 100],
        "evaluated_at": pd.to_datetime(["2026-01-01", "2026-02-01", "2026-02-01"])})
    latest = gather.latest_metrics(metrics)
    assert list(latest.model) == ["markov", "m"] and set(latest.evaluation_id) == {"new"}
    assert latest.ci.unique().tolist() == ["bound"] and round(latest.ci_low.iloc[0], 3) == 0.402


def test_ingest_accounting_from_the_run_or_from_the_tables():
    report = {"rows_in": 10, "accepted": 6, "quarantined": 3, "duplicates_removed": 1,
              "reasons": {"missing_user_id": 1, "negative_price": 2}}
    acc = gather.ingest_accounting(None, None, report)
    assert (acc["rows_in"], acc["accepted"], acc["quarantined"], acc["duplicates"], acc["balanced"]) == (10, 6, 3, 1, True)
    assert list(acc["reasons"]) == ["negative_price", "missing_user_id"]
    assert gather.ingest_accounting(None, None, {**report, "rows_in": 11})["balanced"] is False
    quarantine = pd.DataFrame({"record_type": ["event", "event", "item"], "reason": ["a", "a", "b"],
                               "ingest_batch": [1, 1, 1]})
    acc = gather.ingest_accounting(pd.Series([1, 1, 2]), quarantine)
    assert (acc["source"], acc["accepted"], acc["quarantined"], acc["duplicates"], acc["rows_in"]) == ("tables", 3, 2, None, None)
    assert acc["reasons"] == {"a": 2} and acc["balanced"] is None
    assert gather.ingest_accounting(None, None)["accepted"] is None


def test_the_lookup_sample_is_bounded_stable_and_order_free():
    ids = [f"user{i:03d}" for i in range(200)]
    sample = gather.sample_users(ids, 10, seed=7)
    assert len(sample) == 10 and sample == gather.sample_users(list(reversed(ids)) + ids[:5], 10, seed=7)
    assert set(sample) <= set(ids) and gather.sample_users(ids, 10, seed=8) != sample
    assert gather.sample_users(ids, 0, 7) == [] and len(gather.sample_users(ids[:3], 10, 7)) == 3


def test_user_lookup_holds_the_trajectory_score_and_recommendations_in_order():
    scores = pd.DataFrame({"user_id": ["u1"], "as_of": [W2], "p_switch": [0.25], "forecast_stage": ["stable"],
                           "explanation": ["next b"]})
    recs = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "rank": [2, 1, 1], "category": ["c", "b", "a"],
                         "reason": ["explore", "exploit", "exploit"], "explanation": ["x", "y", "z"]})
    out = gather.user_lookup(["u1"], _windows(), scores, recs, top=1)
    assert set(out) == {"u1"}
    assert out["u1"]["trajectory"] == [["2026-01-05", ["a"], [0.5]], ["2026-01-12", ["b"], [0.75]]]
    assert out["u1"]["score"]["p_switch"] == 0.25
    assert out["u1"]["recommendations"] == [[1, "b", "exploit", "y"], [2, "c", "explore", "x"]]
    empty = gather.user_lookup(["u9"], None, None, None)
    assert empty == {"u9": {"trajectory": [], "score": None, "recommendations": []}}


def test_every_gatherer_takes_missing_and_empty_tables():
    for frame in (None, pd.DataFrame()):
        assert gather.interest_heatmap(frame, {}).empty
        assert gather.migration_marks(frame, {}, 5)[0].empty
        assert gather.flow_periods(frame, 5).empty
        assert gather.stage_counts(frame).empty
        assert gather.latest_metrics(frame).empty


def test_script_data_cannot_close_the_script_element():
    lookup = {"u1": {"trajectory": [], "score": None, "recommendations": [[1, "c", "exploit", "</script><b>x"]]}}
    page, charts = render_page("t", [], [Section("s", "S")], lookup, {})
    assert charts == 0
    script = page.split('<script id="plotly-gz"', 1)[1]
    assert "</script><b>x" not in script and "<\\/script><b>x" in script


def test_a_page_renders_without_tables_and_says_what_is_missing(tmp_path):
    conf = load_config(overrides=[f"storage.warehouse={tmp_path / 'wh'}", f"report.dir={tmp_path / 'reports'}"])
    page, charts, users, missing = build_page(conf)
    assert charts == 0 and users == 0
    for table in ("silver.user_interest_windows", "gold.migration_flows", "silver.interest_stages",
                  "gold.model_metrics", "bronze.events"):
        assert f"table {table} does not exist" in page
    assert "no user lookup" in page and "What is missing" in page


def test_an_empty_table_and_a_failed_run_are_named_on_the_page(tmp_path):
    from deltalake import write_deltalake

    from interest_lib.storage.catalog import CONTRACTS

    warehouse = tmp_path / "wh"
    schema = pa.schema([(n, {"string": pa.string(), "double": pa.float64(), "bigint": pa.int64(),
                             "timestamp": pa.timestamp("us", tz="UTC")}[t])
                        for n, t in CONTRACTS[GOLD_MODEL_METRICS].columns])
    write_deltalake(table_path(str(warehouse), GOLD_MODEL_METRICS), schema.empty_table())
    conf = load_config(overrides=[f"storage.warehouse={warehouse}", f"report.dir={tmp_path / 'reports'}"])
    folder = str(tmp_path / "reports" / "run-x")
    write_run_record(folder, {"run": "run-x", "tables": {GOLD_MODEL_METRICS: {"version": 0, "rows": 0}},
                              "seconds": {"ingest": 1.5}, "ingest": None,
                              "failed": {"step": "featurize", "error": "InputError: no events"}})
    result = write_report(conf, run_folder=folder)
    page = open(result.path).read()
    assert result.path == f"{folder}/report.html" and result.charts == 1  # the step-time bars only
    assert "table gold.model_metrics is empty at version 0" in page
    assert "the run failed in step featurize: InputError: no events" in page
    assert result.missing[GOLD_MODEL_METRICS] == "table gold.model_metrics is empty at version 0"
    assert json.loads(re.search(r"window.REPORT_CHARTS=(\d+)", page).group(1)) == 1


def test_the_report_command_needs_no_spark_and_names_a_missing_run_record(tmp_path, capsys):
    from interest_lib.cli import main

    sets = ["--set", f"storage.warehouse={tmp_path / 'wh'}", "--set", f"report.dir={tmp_path / 'reports'}"]
    out = tmp_path / "page.html"
    assert main(["report", "--out", str(out), *sets]) == 0
    assert out.stat().st_size > 1_000_000 and "report: " in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["report", "--run", str(tmp_path / "nope"), *sets])
    assert exc.value.code == 3
    assert f"no run record {tmp_path / 'nope'}/run.json" in capsys.readouterr().err


def _write(warehouse, name, frame):
    from deltalake import write_deltalake

    write_deltalake(table_path(str(warehouse), name), pa.Table.from_pandas(frame, preserve_index=False))


@pytest.mark.parametrize("dp", [False, True])
def test_flows_honour_the_minimum_group_and_the_dp_mode(tmp_path, dp):
    from interest_lib.storage.catalog import SILVER_INTEREST_MIGRATIONS

    warehouse = tmp_path / "wh"
    eps, delta = (1.0, 2e-6) if dp else (None, None)
    _write(warehouse, GOLD_MIGRATION_FLOWS, pd.DataFrame({
        "window": [1, 1, 2], "window_start": [W1, W1, W2], "from_category": ["home", "sports", "home"],
        "to_category": ["baby", "tinyflow", "baby"], "users": [6, 2, 9],
        "dp_epsilon": [eps] * 3, "dp_delta": [delta] * 3}).astype({"dp_epsilon": float, "dp_delta": float}))
    _write(warehouse, SILVER_INTEREST_MIGRATIONS, pd.DataFrame({
        "window_start": [W1] * 5, "to_category": ["baby"] * 5}))
    sets = [f"storage.warehouse={warehouse}", f"report.dir={tmp_path / 'r'}", "migration.min_group_size=5",
            "report.heatmap_level=0"]
    conf = load_config(overrides=sets + (["privacy.dp_epsilon=1.0"] if dp else []))
    page, charts, _users, _missing = build_page(conf)
    sankey = next(json.loads(m.replace("<\\/", "</")) for m in re.findall(r"const f=(\{.*?\});Plotly", page)
                  if '"sankey"' in m)
    labels = {label for trace in sankey["data"] for label in trace["node"]["label"]}
    assert labels == {"home (from)", "baby (to)"}  # sports -> tinyflow (2 users) never reaches the page
    assert [t["link"]["value"] for t in sankey["data"]] == [[15], [6], [9]]  # all windows, then each week
    if dp:
        assert "ε-DP ε=1 δ=2.0e-06" in page and "migration overlay left out" in page
    else:
        assert "ε-DP" not in page and "exact counts" in page and "migration overlay left out" not in page


def test_a_pipeline_that_fails_still_writes_its_report_naming_the_step(tmp_path):
    from interest_lib.pipeline import run_pipeline

    raw = tmp_path / "raw" / "events"
    raw.mkdir(parents=True)
    (raw / "part-0.jsonl").write_text('{"event_id": "e1"}\n')
    conf = load_config(overrides=[f"storage.warehouse={tmp_path / 'wh'}", f"storage.raw_dir={tmp_path / 'raw'}",
                                  f"report.dir={tmp_path / 'reports'}", "run.run_id=broken"])
    with pytest.raises(Exception) as exc:  # no Spark session: ingest, the first step, fails
        run_pipeline(None, conf, None)
    record = json.loads((tmp_path / "reports" / "broken" / "run.json").read_text())
    assert record["failed"]["step"] == "ingest" and type(exc.value).__name__ in record["failed"]["error"]
    page = (tmp_path / "reports" / "broken" / "report.html").read_text()
    assert "the run failed in step ingest" in page and "table bronze.events does not exist" in page


def _metrics_with_cis_and_drift():
    """gold.model_metrics rows: an evaluation with stored CIs (one value without: an older
    writer), and a two-week drift series in which the model falls below markov."""
    at = pd.Timestamp("2026-02-01")
    test = pd.DataFrame({
        "evaluation_id": ["e"] * 3, "model": ["markov", "augru", "augru"], "kind": ["baseline", "model", "model"],
        "task": ["migration"] * 3, "slice": ["all"] * 3, "metric": ["ndcg@10", "ndcg@10", "mrr"],
        "value": [0.5, 0.6, 0.4], "rows": [100] * 3, "evaluated_at": [at] * 3,
        "ci_low": [0.45, 0.52, np.nan], "ci_high": [0.55, 0.68, np.nan], "series": ["test"] * 3,
        "week_start": [pd.NaT] * 3})
    drift = pd.DataFrame({
        "evaluation_id": ["d1", "d1", "d2", "d2"], "model": ["augru", "markov"] * 2,
        "kind": ["model", "baseline"] * 2, "task": ["migration"] * 4, "slice": ["all"] * 4,
        "metric": ["ndcg@10"] * 4, "value": [0.6, 0.5, 0.4, 0.5], "rows": [50] * 4,
        "evaluated_at": [at + pd.Timedelta(days=d) for d in (7, 7, 14, 14)],
        "ci_low": [0.5, 0.45, 0.3, 0.42], "ci_high": [0.7, 0.55, 0.5, 0.58], "series": ["drift"] * 4,
        "week_start": pd.to_datetime(["2026-02-02"] * 2 + ["2026-02-09"] * 2)})
    return pd.concat([test, drift], ignore_index=True)


def test_stored_intervals_are_used_and_drift_rows_are_not_an_evaluation():
    latest = gather.latest_metrics(_metrics_with_cis_and_drift())
    assert set(latest.evaluation_id) == {"e"} and len(latest) == 3  # the newer drift rows are not the evaluation
    by = {(m, k): r for m, k, r in zip(latest.model, latest.metric, latest.itertuples())}
    assert (by["augru", "ndcg@10"].ci_low, by["augru", "ndcg@10"].ci_high, by["augru", "ndcg@10"].ci) == (0.52, 0.68, "stored")
    low, high = gather.mean_ci(0.4, 100)  # the row without a stored CI falls back to the bound
    assert (by["augru", "mrr"].ci_low, by["augru", "mrr"].ci_high, by["augru", "mrr"].ci) == (low, high, "bound")
    assert gather.drift_frame([]).empty and gather.stream_progress(None).empty


def test_a_page_draws_stored_intervals_the_drift_series_and_streaming_progress(tmp_path):
    warehouse = tmp_path / "wh"
    metrics = _metrics_with_cis_and_drift()
    _write(warehouse, GOLD_MODEL_METRICS, metrics.assign(
        evaluated_at=metrics.evaluated_at.astype("datetime64[us]"), week_start=metrics.week_start.astype("datetime64[us]")))
    conf = load_config(overrides=[f"storage.warehouse={warehouse}", f"report.dir={tmp_path / 'reports'}"])
    page, charts, _users, _missing = build_page(conf)
    names = re.findall(r'data-chart="([a-z]+)"', page)
    assert names == ["migration", "drift"] and charts == 2
    assert "95% intervals: conservative where the evaluation stored none" in page  # one row lacked a CI
    assert "Drift series: 2 week(s); latest week 2026-02-09: augru 0.4000 vs best baseline markov 0.5000 (below)" in page
    assert "no streaming yet: gold.stream_progress holds no micro-batch" in page

    progress = pd.DataFrame({"query": ["q"] * 3, "batch_id": [0, 1, 1], "input_rows": [9, 6, 6],
                             "input_rows_per_s": [1.0] * 3, "processed_rows_per_s": [3.0, 4.0, 5.0],
                             "batch_seconds": [2.0, 1.5, 1.4], "latency_s": [100.0, 91.0, 90.0],
                             "accepted": [5, 4, 4], "scored_users": [None] * 3,
                             "recorded_at": pd.to_datetime(["2026-02-01 10:00", "2026-02-01 10:01",
                                                            "2026-02-01 10:02"]).astype("datetime64[us]")})
    _write(warehouse, "gold.stream_progress", progress)
    page, charts, _users, _missing = build_page(conf)
    assert re.findall(r'data-chart="([a-z]+)"', page) == ["migration", "drift", "stream"] and charts == 3
    assert "no streaming yet" not in page
    assert gather.stream_progress(progress).latency_s.tolist() == [100.0, 90.0]  # batch 1's newest record
