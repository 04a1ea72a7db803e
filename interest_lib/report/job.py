"""``interest report`` and the last step of ``interest run``: one self-contained HTML page per run.

A run is described by its ``run.json`` (written by ``interest run`` next to its page): the table
versions at the end of the run, the seconds and summary of each step, the ingest report, and the
step that failed, if one did. The page reads every table at those versions (a table the run did
not reach: its latest version), without Spark, so it shows one consistent state even while other
jobs commit. ``interest report`` without a run renders the warehouse's latest versions.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import time
from dataclasses import dataclass, field
from typing import Optional

from interest_lib.conf import Config
from interest_lib.errors import InputError
from interest_lib.logs import get_logger
from interest_lib.report import charts, gather
from interest_lib.report.load import ReportInputs, pin_versions
from interest_lib.report.page import Section, html_table, render_page
from interest_lib.runs import fs
from interest_lib.storage.catalog import (
    BRONZE_EVENTS, BRONZE_QUARANTINE, GOLD_MIGRATION_FLOWS, GOLD_MODEL_METRICS, GOLD_RECOMMENDATIONS,
    GOLD_STREAM_PROGRESS, GOLD_USER_INTEREST_SCORES, REF_ITEMS, SILVER_INTEREST_MIGRATIONS, SILVER_INTEREST_STAGES,
    SILVER_USER_INTEREST_WINDOWS,
)

log = get_logger(__name__)

RUN_FILE = "run.json"
#: silver.user_interest_windows columns read once for the heat map and the lookup.
WINDOW_COLUMNS = ["user_id", "window_start", "n_events", "window_categories", "window_shares"]
PAGE_FILE = "report.html"


@dataclass
class ReportResult:
    """Where the page went and what it holds."""

    path: str
    bytes: int
    seconds: float
    charts: int
    lookup_users: int
    missing: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One line for logs and the pipeline report."""
        gone = f"; missing: {', '.join(self.missing)}" if self.missing else ""
        return (f"{self.path} ({self.bytes / 1e6:.2f} MB, {self.charts} charts, {self.lookup_users} "
                f"users in the lookup, {self.seconds:.1f} s){gone}")


def run_name(conf: Config, now: Optional[dt.datetime] = None) -> str:
    """The folder name of a run's report: ``run.run_id`` when set, else ``run-<UTC time>``."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return conf.run.run_id or f"run-{now:%Y%m%dT%H%M%SZ}"


def write_run_record(folder: str, record: dict) -> str:
    """Write ``run.json`` (table versions, step times, ingest report, failure) into ``folder``."""
    fs.makedirs(folder)
    path = fs.join(folder, RUN_FILE)
    fs.write_bytes(path, json.dumps(record, indent=1, default=str).encode())
    return path


def read_run_record(location: str) -> dict:
    """A run's ``run.json`` (``location`` = the file or its folder).

    Raises:
        InputError: naming the file when there is none (CLI exit 3).
    """
    path = location if location.endswith(".json") else fs.join(location, RUN_FILE)
    if not fs.exists(path):
        raise InputError(f"no run record {path}: give --run the folder `interest run` wrote its report to "
                         "(under report.dir)")
    return json.loads(fs.read_bytes(path).decode())


def _fmt(n) -> str:
    return "unknown" if n is None else f"{n:,}"


def _heatmap_section(inputs: ReportInputs, conf: Config, dp_on: bool) -> Section:
    level = conf.report.heatmap_level
    s = Section("heatmap", "Interest evolution", intro=(
        "Each cell: the share of active users' interest in that row during the week (the mean over "
        "the week's active users of their share of weighted events there; each column sums to 1). "
        f"Rows: {'categories' if level == 0 else f'the first {level} level(s) of the category path'}. "
        f"Circles: detected migrations into the row that week (cells under migration.min_group_size = "
        f"{conf.migration.min_group_size} hidden; so are weeks with fewer active users)."))
    windows = inputs.read(SILVER_USER_INTEREST_WINDOWS, WINDOW_COLUMNS)
    items = inputs.read(REF_ITEMS, ["category_id", "category_path"]) if level > 0 else None
    if level > 0 and items is None:
        s.missing.append(f"{inputs.missing.get(REF_ITEMS, REF_ITEMS)}: rows are categories, not families")
    rows_of = gather.category_rows(items, level)
    heat = gather.interest_heatmap(windows, rows_of, conf.migration.min_group_size)
    marks, hidden = gather.migration_marks(None, rows_of, conf.migration.min_group_size)
    if dp_on:
        s.missing.append("migration overlay left out: privacy.dp_epsilon is set and the detected "
                         "migrations are exact counts (the flows below are the private release)")
    else:
        migrations = inputs.read(SILVER_INTEREST_MIGRATIONS, ["window_start", "to_category"])
        marks, hidden = gather.migration_marks(migrations, rows_of, conf.migration.min_group_size)
        if migrations is None or migrations.empty:
            s.missing.append(f"no migration overlay: {inputs.missing.get(SILVER_INTEREST_MIGRATIONS, 'no migrations')}")
        elif hidden:
            s.intro += f" {hidden:,} migrations fall in hidden cells."
    if heat.empty:
        s.missing.append(f"no heat map: {inputs.missing.get(SILVER_USER_INTEREST_WINDOWS, 'no active user window')}")
    s.charts["heatmap"] = charts.heatmap_figure(heat, marks, "family" if level == 1 else "row")
    return s


def _flows_section(inputs: ReportInputs, conf: Config) -> tuple[Section, bool]:
    s = Section("flows", "Migration flows")
    flows = inputs.read(GOLD_MIGRATION_FLOWS, ["window", "window_start", "from_category", "to_category",
                                               "users", "dp_epsilon", "dp_delta"])
    dp_on = conf.privacy.dp_epsilon is not None
    note = f"cells ≥ {conf.migration.min_group_size} users"
    if flows is not None and not flows.empty and flows.dp_epsilon.notna().any():
        eps, delta = float(flows.dp_epsilon.dropna().iloc[0]), float(flows.dp_delta.dropna().iloc[0])
        note += f", ε-DP ε={eps:g} δ={delta:.1e}"
        dp_on = True
    s.intro = ("From → to migrations of the published table gold.migration_flows (rolled up to "
               f"migration.flow_level; {html.escape(note)}). The menu picks the period: all windows, "
               "or one week.")
    cells = gather.flow_periods(flows, conf.migration.min_group_size)
    if cells.empty:
        s.missing.append("no migration flow to draw: " + inputs.missing.get(
            GOLD_MIGRATION_FLOWS, f"no published cell reaches {conf.migration.min_group_size} users"))
    s.charts["sankey"] = charts.sankey_figure(cells, note)
    return s, dp_on


def _stages_section(inputs: ReportInputs) -> Section:
    s = Section("stages", "Stages over time", intro="Followed interests (user × category) per evolution stage and week.")
    stages = gather.stage_counts(inputs.read(SILVER_INTEREST_STAGES, ["window_start", "stage"]))
    if stages.empty:
        s.missing.append(f"no stages: {inputs.missing.get(SILVER_INTEREST_STAGES, 'no stage rows')}")
    s.charts["stages"] = charts.stages_figure(stages)
    return s


#: gold.model_metrics columns every version of the table has; the CI and drift columns came later.
METRIC_COLUMNS = ["evaluation_id", "model", "kind", "task", "slice", "metric", "value", "rows", "evaluated_at"]
LATER_METRIC_COLUMNS = ["ci_low", "ci_high", "series", "week_start"]


def _models_section(inputs: ReportInputs, conf: Config) -> Section:
    from interest_lib.monitor.trend import drift_points

    s = Section("models", "Models vs baselines")
    have = inputs.columns(GOLD_MODEL_METRICS)
    rows = inputs.read(GOLD_MODEL_METRICS, METRIC_COLUMNS + [c for c in LATER_METRIC_COLUMNS if c in have])
    metrics = gather.latest_metrics(rows)
    if metrics.empty:
        s.missing.append(f"no evaluation: {inputs.missing.get(GOLD_MODEL_METRICS, 'no metrics')}")
    else:
        stored = (metrics.ci == "stored").all()
        how = ("the user-clustered bootstrap of each value, stored with the metrics by `interest evaluate`"
               if stored else
               "conservative where the evaluation stored none (written before gold.model_metrics had CI "
               "columns): the mean ± 1.96·sqrt(μ(1−μ)/n), valid for any metric in [0, 1]")
        s.intro = (f"Evaluation {html.escape(str(metrics.evaluation_id.iloc[0]))} on the test split; "
                   f"hatched bars are baselines. 95% intervals: {how}.")
        for task in ("migration", "evolution"):
            fig = charts.metrics_figure(metrics, task)
            if fig is None:
                s.missing.append(f"no {task} metrics in the newest evaluation")
            s.charts[task] = fig
    m = conf.monitor
    drift = gather.drift_frame(drift_points(rows, m.task, m.slice, m.metric))
    if drift.empty:
        s.missing.append(f"no drift series yet for {m.task} {m.slice} {m.metric}: every `interest score` with a "
                         "trained model appends one week to gold.model_metrics (monitor.drift); "
                         "`interest monitor` judges it")
    else:
        last = drift.iloc[-1]
        s.html += (f"<p id=\"drift-note\">Drift series: {len(drift)} week(s); latest week {last.week_start}: "
                   f"{html.escape(str(last.model))} {last.model_value:.4f} vs best baseline "
                   f"{html.escape(str(last.baseline))} {last.baseline_value:.4f}"
                   f"{' (below)' if last.below else ''}. `interest monitor` asks for a retrain after "
                   f"{m.weeks} week(s) below in a row.</p>")
    s.charts["drift"] = charts.drift_figure(drift, m.metric, m.weeks)
    return s


def _health_section(inputs: ReportInputs, run: dict) -> Section:
    s = Section("health", "Run health")
    events = inputs.read(BRONZE_EVENTS, ["ingest_batch"])
    quarantine = inputs.read(BRONZE_QUARANTINE, ["record_type", "reason", "ingest_batch"])
    acc = gather.ingest_accounting(None if events is None else events.ingest_batch, quarantine, run.get("ingest"))
    if acc["accepted"] is None:
        s.missing.append(f"no ingest accounting: {inputs.missing.get(BRONZE_EVENTS, 'no events')}")
    elif acc["source"] == "tables":
        s.missing.append("rows in and duplicates removed are counted only by the ingest job, and this run "
                         "did not ingest (or has no run record): accepted and quarantined are the tables' "
                         "totals over all batches")
    check = {True: "balanced", False: "NOT balanced", None: "not checkable"}[acc["balanced"]]
    s.html += (f"<p id=\"accounting\">rows in {_fmt(acc['rows_in'])} = accepted {_fmt(acc['accepted'])} + "
               f"quarantined {_fmt(acc['quarantined'])} + duplicates removed {_fmt(acc['duplicates'])} "
               f"({check}; from the {acc['source']})</p>")
    if acc["reasons"]:
        s.html += "<h3>Quarantine reasons</h3>" + html_table(["reason", "events"], list(acc["reasons"].items()), (1,))
    s.charts["accounting"] = charts.accounting_figure(acc)
    seconds = run.get("seconds") or {}
    if not seconds:
        s.missing.append("per-step times: no run record (they are kept by `interest run` in run.json)")
    s.charts["steps"] = charts.step_times_figure(seconds)
    if run.get("failed"):
        f = run["failed"]
        s.missing.insert(0, f"the run failed in step {f['step']}: {f['error']}; later steps did not run")
    rows = [[st.name, st.version, st.rows, st.files, None if st.bytes is None else f"{st.bytes / 1e6:.2f}",
             st.problem or "ok"] for st in inputs.states.values()]
    s.html += "<h3>Tables (pinned versions)</h3>" + html_table(
        ["table", "version", "rows", "files", "MB", "state"], rows, (1, 2, 3, 4))
    progress = None
    if not inputs.states[GOLD_STREAM_PROGRESS].problem:
        progress = inputs.read(GOLD_STREAM_PROGRESS, ["query", "batch_id", "input_rows", "processed_rows_per_s",
                                                      "batch_seconds", "latency_s", "recorded_at"])
    stream = gather.stream_progress(progress)
    if stream.empty:
        s.missing.append("no streaming yet: gold.stream_progress holds no micro-batch (`interest stream` "
                         "appends one row per micro-batch: rows/s, duration, landing -> scores latency)")
    s.charts["stream"] = charts.stream_figure(stream)
    return s


def _lookup(inputs: ReportInputs, conf: Config) -> tuple[Optional[dict], object]:
    """(user -> lookup entry, category -> path), or (None, why there is no lookup)."""
    n = conf.report.lookup_users
    if n <= 0:
        return None, "user lookup off (report.lookup_users = 0)"
    as_of = inputs.latest_partition(GOLD_USER_INTEREST_SCORES, "as_of_date")
    if as_of is None:
        return None, f"no user lookup: {inputs.states[GOLD_USER_INTEREST_SCORES].problem or 'no scored user'}"
    scores = inputs.read(GOLD_USER_INTEREST_SCORES, ["user_id", "as_of", "p_switch", "forecast_stage",
                                                     "explanation"], {"as_of_date": as_of})
    if scores is None or scores.empty:
        return None, f"no user lookup: {inputs.missing.get(GOLD_USER_INTEREST_SCORES, 'no scored user')}"
    users = gather.sample_users(scores.user_id, n, conf.report.lookup_seed)
    windows = inputs.read(SILVER_USER_INTEREST_WINDOWS, WINDOW_COLUMNS)
    recs = None
    if inputs.latest_partition(GOLD_RECOMMENDATIONS, "as_of_date") is not None:
        recs = inputs.read(GOLD_RECOMMENDATIONS, ["user_id", "rank", "category", "reason", "explanation"],
                           {"as_of_date": as_of})
    lookup = gather.user_lookup(users, windows, scores, recs)
    used = {c for u in lookup.values() for c in [*(c for t in u["trajectory"] for c in t[1]),
                                                  *(r[1] for r in u["recommendations"])]}
    paths = gather.category_rows(inputs.read(REF_ITEMS, ["category_id", "category_path"]), level=99)
    return lookup, {c: p for c, p in paths.items() if c in used and p != c}


def build_page(conf: Config, run: Optional[dict] = None) -> tuple[str, int, int, dict]:
    """The page of ``run`` (a ``run.json`` record; None = the warehouse's latest versions).

    Returns:
        (HTML, charts drawn on load, users in the lookup, table -> why it is missing).
    """
    run = run or {}
    versions = {name: t["version"] for name, t in (run.get("tables") or {}).items()}
    inputs = ReportInputs(conf.storage.warehouse, pin_versions(conf.storage.warehouse, versions))
    flows, dp_on = _flows_section(inputs, conf)
    sections = [_heatmap_section(inputs, conf, dp_on), flows, _stages_section(inputs),
                _models_section(inputs, conf), _health_section(inputs, run)]
    lookup, names = _lookup(inputs, conf)
    if lookup is None:
        sections[-1].missing.append(names)
    pinned = ", ".join(f"{n}@{s.version}" for n, s in inputs.states.items() if s.version is not None)
    meta = [f"warehouse {html.escape(str(conf.storage.warehouse))}; generated "
            f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC",
            f"tables at pinned versions: {html.escape(pinned) or 'none'}",
            "privacy: " + (f"ε-DP flows (privacy.dp_epsilon = {conf.privacy.dp_epsilon})" if dp_on
                           else "exact counts") + f", minimum group size {conf.migration.min_group_size}"]
    title = f"interest-evolution run report: {run.get('run', 'latest tables')}"
    page, n_charts = render_page(title, meta, sections, lookup, dict(inputs.missing), names if lookup else None)
    return page, n_charts, len(lookup or {}), dict(inputs.missing)


def write_report(conf: Config, run_folder: Optional[str] = None, out: Optional[str] = None) -> ReportResult:
    """Write the page of the run in ``run_folder`` (its run.json; None: the latest tables).

    Args:
        conf: the configuration (storage.warehouse, report.*, migration.min_group_size, privacy).
        run_folder: a folder holding ``run.json``; the page goes there unless ``out`` is given.
        out: the page's path; default ``<run_folder>/report.html``, or, without a run,
            ``<report.dir>/<run_name>/report.html``.
    """
    start = time.perf_counter()
    run = read_run_record(run_folder) if run_folder else None
    if run_folder and run_folder.endswith(".json"):
        run_folder = run_folder.rsplit("/", 1)[0] or "."
    if out is None:
        folder = run_folder or fs.join(fs.canonical(conf.report.dir), run_name(conf))
        fs.makedirs(folder)
        out = fs.join(folder, PAGE_FILE)
    page, n_charts, n_users, missing = build_page(conf, run)
    data = page.encode()
    fs.write_bytes(out, data)
    result = ReportResult(out, len(data), time.perf_counter() - start, n_charts, n_users, missing)
    log.info("report: %s", result.summary())
    return result
