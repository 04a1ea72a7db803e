"""The run report of the shared pipeline, opened in headless Chromium as a person would: every
chart drawn with the data the tables hold, no console error, a screenshot that is not blank, and
the user lookup finding a sampled user with the recommendations gold.recommendations holds."""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import re
import time

import pytest

from interest_lib.cli import main
from interest_lib.storage.catalog import (
    GOLD_MIGRATION_FLOWS, GOLD_MODEL_METRICS, GOLD_RECOMMENDATIONS, GOLD_USER_INTEREST_SCORES,
    SILVER_INTEREST_STAGES, table_path,
)
from tests.browser import headless_chromium, wait_for
from tests.helpers import read_with_delta_rs

pytestmark = pytest.mark.integration

CHARTS = ["heatmap", "sankey", "stages", "migration", "evolution", "drift", "accounting", "steps"]


def _rows(conf, name, version, columns):
    """``columns`` of table ``name`` at ``version``, read with delta-rs' own engine (not the report's reader)."""
    return read_with_delta_rs(table_path(conf.storage.warehouse, name), version).select(columns).to_pandas()


@pytest.fixture(scope="module")
def run_page(pipeline):
    """The page and run record `interest run` wrote as its last step (the fixture's first run)."""
    _settings, _tables, conf = pipeline
    folder = sorted(glob.glob(os.path.join(conf.report.dir, "run-*")))[0]
    with open(os.path.join(folder, "run.json")) as fh:
        record = json.load(fh)
    return folder, os.path.join(folder, "report.html"), record


def test_interest_run_wrote_a_small_self_contained_page_at_its_table_versions(pipeline, run_page, tmp_path):
    settings, tables, conf = pipeline
    folder, page, record = run_page
    text = open(page, encoding="utf-8").read()
    assert os.path.getsize(page) < 5_000_000
    assert "<script src" not in text and "<link" not in text  # nothing fetched: scripts and data inline
    versions = {name: t["version"] for name, t in record["tables"].items()}
    assert versions[GOLD_MODEL_METRICS] >= 0 and set(record["seconds"]) >= {"ingest", "featurize", "score"}
    assert f"{GOLD_MIGRATION_FLOWS}@{versions[GOLD_MIGRATION_FLOWS]}" in text
    # the health table's versions and rows (from the Delta logs) = what Spark counted at the run's end
    shown = {m[0]: (int(m[1]), int(m[2])) for m in re.findall(
        r'<tr><td>([a-z_]+\.[a-z_]+)</td><td class="n">(\d+)</td><td class="n">(\d+)</td>', text)}
    assert shown == {name: (t["version"], t["rows"]) for name, t in record["tables"].items()}
    # `interest report --run` re-renders the same run at the same versions (timed for the README)
    out = tmp_path / "again.html"
    start = time.perf_counter()
    assert main(["report", "--run", folder, "--out", str(out), *[x for s in settings for x in ("--set", s)]]) == 0
    print(f"interest report on the pipeline store: {time.perf_counter() - start:.1f} s, {out.stat().st_size:,} bytes")
    assert f"{GOLD_MIGRATION_FLOWS}@{versions[GOLD_MIGRATION_FLOWS]}" in out.read_text()


def test_the_page_renders_every_chart_with_its_data_in_chromium(pipeline, run_page, tmp_path):
    _settings, _tables, conf = pipeline
    _folder, page, record = run_page
    versions = {name: t["version"] for name, t in record["tables"].items()}
    # what the charts must show, read independently from the tables at the run's versions
    flows = _rows(conf, GOLD_MIGRATION_FLOWS, versions[GOLD_MIGRATION_FLOWS],
                  ["from_category", "to_category", "users"])
    links = flows[flows.users >= conf.migration.min_group_size][["from_category", "to_category"]].drop_duplicates()
    stage_weeks = _rows(conf, SILVER_INTEREST_STAGES, versions[SILVER_INTEREST_STAGES],
                        ["window_start"]).window_start.nunique()
    metrics = _rows(conf, GOLD_MODEL_METRICS, versions[GOLD_MODEL_METRICS],
                    ["evaluation_id", "evaluated_at", "model", "kind", "task", "slice", "metric", "value", "ci_low", "ci_high",
                     "series", "week_start"])
    tested = metrics[metrics.series == "test"]
    newest = tested[tested.evaluation_id == tested.sort_values("evaluated_at").evaluation_id.iloc[-1]]
    bars = {task: len(newest[(newest.task == task) & newest.metric.isin(ms)])
            for task, ms in (("migration", ["hr@10", "ndcg@10", "mrr"]), ("evolution", ["js", "stage_acc"]))}
    assert len(links) > 0 and all(bars.values())
    # the evaluation stored a bootstrap CI around every value; scoring appended one drift week
    assert (newest.ci_low <= newest.value + 1e-12).all() and (newest.value <= newest.ci_high + 1e-12).all()
    assert (newest.ci_high - newest.ci_low).gt(0).any()
    drift = metrics[(metrics.series == "drift") & (metrics.task == conf.monitor.task)
                    & (metrics.metric == conf.monitor.metric) & (metrics.slice == conf.monitor.slice)]
    assert sorted(drift.kind) == ["baseline", "model"] and drift.week_start.nunique() == 1

    profile = tmp_path / "chromium"
    profile.mkdir()
    with headless_chromium(str(profile)) as browser:
        browser.get(f"file://{page}")
        wait_for(browser, "window.REPORT_READY === true")
        charts = browser.execute_script("""return [...document.querySelectorAll('div.chart')].map(e => ({
            name: e.dataset.chart, plotted: e.classList.contains('js-plotly-plot'),
            traces: (e.data || []).length, svg: e.querySelectorAll('.main-svg').length,
            links: e.querySelectorAll('.sankey-link').length, bars: e.querySelectorAll('.bars .point').length,
            heat: e.querySelectorAll('.hm image').length,
            stage_x: (e.data || []).map(t => (t.x || []).length)}))""")
        assert [c["name"] for c in charts] == CHARTS
        assert all(c["plotted"] and c["traces"] and c["svg"] for c in charts), charts
        by = {c["name"]: c for c in charts}
        assert by["heatmap"]["heat"] == 1                      # the heat map's raster is drawn
        assert by["sankey"]["links"] == len(links)             # one link per published from -> to pair
        assert by["stages"]["traces"] == 4 and by["stages"]["stage_x"] == [stage_weeks] * 4
        assert by["migration"]["bars"] == bars["migration"] and by["evolution"]["bars"] == bars["evolution"]
        # every bar carries its stored 95% interval: an error bar drawn per bar, its ends = ci_low / ci_high
        drawn = browser.execute_script("""return [...document.querySelectorAll('div.chart')]
            .filter(e => e.dataset.chart === 'migration' || e.dataset.chart === 'evolution')
            .map(e => ({errorbars: e.querySelectorAll('.errorbar').length,
                        ends: e.data.flatMap(t => t.x.map((x, i) => [t.name, x, t.y[i] + t.error_y.array[i],
                                                                     t.y[i] - t.error_y.arrayminus[i]]))}))""")
        assert [d["errorbars"] for d in drawn] == [bars["migration"], bars["evolution"]]
        expected = {(f"{r.model} ", f"{r.slice} · {r.metric}"): (r.ci_high, r.ci_low) for r in newest.itertuples()}
        for name, x, high, low in (e for d in drawn for e in d["ends"]):
            want = next(v for (m, xx), v in expected.items() if name.startswith(m) and xx == x)
            assert (high, low) == pytest.approx(want, abs=2e-4)
        # the drift series: model and best baseline over the drift weeks
        assert by["drift"]["traces"] >= 2 and by["drift"]["stage_x"][:2] == [drift.week_start.nunique()] * 2
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        shot = tmp_path / "report.png"
        assert browser.save_screenshot(str(shot))

        # the user lookup: the documented sample rule picks the known user, independently of the page
        scores = _rows(conf, GOLD_USER_INTEREST_SCORES, versions[GOLD_USER_INTEREST_SCORES],
                       ["user_id", "as_of_date"])
        as_of = scores.as_of_date.max()
        seed = conf.report.lookup_seed
        user = min(set(scores[scores.as_of_date == as_of].user_id),
                   key=lambda u: hashlib.sha256(f"{seed}:{u}".encode()).hexdigest())
        recs = _rows(conf, GOLD_RECOMMENDATIONS, versions[GOLD_RECOMMENDATIONS],
                     ["user_id", "as_of_date", "rank", "category", "reason"])
        recs = recs[(recs.user_id == user) & (recs.as_of_date == as_of)].sort_values("rank")
        box = browser.find_element("id", "lookup-id")
        box.send_keys(user)
        browser.find_element("id", "lookup-go").click()
        wait_for(browser, "document.getElementById('lookup-found')", timeout=10)
        shown = browser.execute_script("""return [...document.querySelectorAll('#lookup-recs tr')].slice(1)
            .map(r => [...r.cells].map(c => c.textContent))""")
        assert [(int(r[0]), r[1], r[2]) for r in shown] == list(zip(recs["rank"], recs.category, recs.reason))
        assert wait_for(browser, "(document.getElementById('lookup-chart').data || []).length", timeout=10) == 1
        box.clear()
        box.send_keys("not-a-user")
        browser.find_element("id", "lookup-go").click()
        assert "not in this page's sample" in wait_for(
            browser, "document.getElementById('lookup-none') && document.getElementById('lookup-none').textContent",
            timeout=10)
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []

    # a warehouse that has streamed: the health section draws gold.stream_progress (no note)
    _streamed_page_draws_its_progress(conf, tmp_path)

    from PIL import Image

    image = Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    white = sum(n for n, c in colours if min(c) >= 250)
    assert image.size[0] >= 1000 and len(colours) > 200, "the screenshot is blank"
    assert white < 0.9 * image.size[0] * image.size[1], "the screenshot is almost all white"


def _streamed_page_draws_its_progress(conf, tmp_path):
    """A page over a warehouse whose only table is a gold.stream_progress of three micro-batches:
    the streaming chart is drawn in Chromium with one point per batch, without console errors."""
    import pandas as pd
    from deltalake import write_deltalake

    from interest_lib.conf import load_config
    from interest_lib.report.job import write_report
    from interest_lib.storage.catalog import GOLD_STREAM_PROGRESS

    warehouse = tmp_path / "streamed"
    progress = pd.DataFrame({"query": ["q"] * 3, "batch_id": [0, 1, 2], "input_rows": [9, 6, 3],
                             "input_rows_per_s": [1.0] * 3, "processed_rows_per_s": [3.0, 4.0, 5.0],
                             "batch_seconds": [2.0, 1.5, 1.4], "latency_s": [100.0, 91.0, 82.0],
                             "accepted": [5, 4, 1], "scored_users": [2, 1, 1],
                             "recorded_at": pd.to_datetime(["2026-02-01 10:00", "2026-02-01 10:01",
                                                            "2026-02-01 10:02"]).astype("datetime64[us]")})
    write_deltalake(table_path(str(warehouse), GOLD_STREAM_PROGRESS), progress)
    other = load_config(overrides=[f"storage.warehouse={warehouse}", f"report.dir={tmp_path / 'streamed-reports'}"])
    page = write_report(other, out=str(tmp_path / "streamed.html")).path
    assert "no streaming yet" not in open(page, encoding="utf-8").read()
    profile = tmp_path / "chromium-streamed"
    profile.mkdir()
    with headless_chromium(str(profile)) as browser:
        browser.get(f"file://{page}")
        wait_for(browser, "window.REPORT_READY === true")
        stream = browser.execute_script("""const e = document.querySelector('div.chart[data-chart="stream"]');
            return e && {plotted: e.classList.contains('js-plotly-plot'), x: e.data.map(t => t.x.length),
                         latency: e.data[0].y}""")
        assert stream["plotted"] and stream["x"] == [3, 3, 3] and stream["latency"] == [100.0, 91.0, 82.0]
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
