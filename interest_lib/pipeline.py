"""``interest run``: the whole pipeline on one configuration, each step resumable.

generate (only when no raw input exists or ``--input`` is not given) -> ingest -> sessionize ->
featurize -> train (migration, evolution) -> evaluate -> score -> report (the HTML run report, when
``report.enabled``; also written, with the failed step named, when a step fails). Every step resumes: tables already built are not rewritten, a finished training
run for the same data version and settings is not retrained.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Optional

from pyspark.sql import SparkSession

from interest_lib.conf import Config
from interest_lib.ingest.readers import list_local_files
from interest_lib.logs import get_logger
from interest_lib.storage import TABLES, Tables

log = get_logger(__name__)


@dataclass
class PipelineReport:
    """Per-step timings and reports, plus the table versions at the end."""

    steps: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    tables: dict = field(default_factory=dict)
    evaluation: str = ""
    ingest: Optional[dict] = None
    """The ingest report of this run (None when ingest had nothing new to do)."""
    failed: Optional[dict] = None
    """The step that failed and its error (None when every step finished)."""
    report_path: str = ""
    """The HTML run report written at the end ("" when report.enabled is false)."""
    running: list = field(default_factory=list)
    """Steps started, in order (the last one without seconds is the one that failed)."""

    def record(self, run: str, warehouse: str, started: dt.datetime) -> dict:
        """The run's ``run.json``: table versions and rows, step times and summaries, the ingest
        report and the failure, which the HTML report reads its pinned versions from."""
        return {"run": run, "warehouse": os.path.abspath(warehouse), "started_at": started.isoformat(),
                "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                "tables": {n: {"version": v, "rows": r} for n, (v, r) in self.tables.items()},
                "seconds": dict(self.seconds), "steps": dict(self.steps), "ingest": self.ingest,
                "failed": self.failed}

    def render(self, warehouse: str) -> str:
        """The closing report printed by ``interest run``."""
        lines = ["", "interest-evolution pipeline report", "=" * 34]
        for step, secs in self.seconds.items():
            lines.append(f"  {step:<15} {secs:7.1f} s   {self.steps.get(step, '')}")
        lines.append(f"  {'total':<15} {sum(self.seconds.values()):7.1f} s")
        lines.append(f"tables under {os.path.abspath(warehouse)}:")
        for name, (version, rows) in self.tables.items():
            lines.append(f"  {name:<28} version {version:<4} {rows:>12,} rows")
        if self.evaluation:
            lines += ["", self.evaluation]
        if self.report_path:
            lines += ["", f"run report: {self.report_path}"]
        return "\n".join(lines)


def _has_raw_events(conf: Config) -> bool:
    path = conf.ingest.input or os.path.join(conf.storage.raw_dir, "events")
    return "://" in path or bool(list_local_files(path))



def run_pipeline(spark: SparkSession, conf: Config, tables: Tables,
                 input_path: Optional[str] = None, fresh: bool = False) -> PipelineReport:
    """Run every step in order; with ``fresh`` the warehouse (and generated raw data) is rebuilt.

    With ``report.enabled`` the run ends by writing ``<report.dir>/<run>/run.json`` and the HTML
    run report beside it; a failed step still gets its report (naming the step), then re-raises.
    """
    report = PipelineReport()
    started = dt.datetime.now(dt.timezone.utc)
    try:
        _run_steps(spark, conf, tables, report, input_path, fresh)
    except Exception as exc:
        step = next((s for s in report.running if s not in report.seconds), "start")
        report.failed = {"step": step, "error": f"{type(exc).__name__}: {exc}"}
        _write_run_report(conf, report, started, final=False)
        raise
    _write_run_report(conf, report, started, final=True)
    return report


def _write_run_report(conf: Config, report: PipelineReport, started: dt.datetime, final: bool) -> None:
    """run.json + the HTML page of this run; a failure here is logged, never hides the run's own
    result or error (the page can be rebuilt with ``interest report --run <folder>``)."""
    if not conf.report.enabled:
        return
    from interest_lib.report.job import run_name, write_report, write_run_record
    from interest_lib.runs import fs

    start = time.perf_counter()
    try:
        folder = fs.join(fs.canonical(conf.report.dir), run_name(conf, started))
        write_run_record(folder, report.record(run_name(conf, started), conf.storage.warehouse, started))
        result = write_report(conf, run_folder=folder)
        report.report_path = result.path
        if final:
            report.seconds["report"] = time.perf_counter() - start
            report.steps["report"] = result.summary()
    except Exception:  # noqa: BLE001 - the report must not turn a finished run into a failed one
        log.exception("the run report could not be written")


def _run_steps(spark: SparkSession, conf: Config, tables: Tables, report: PipelineReport,
               input_path: Optional[str], fresh: bool) -> None:
    from interest_lib.generate.job import run_generate
    from interest_lib.ingest import run_ingest
    from interest_lib.features.job import run_featurize
    from interest_lib.sessions import run_sessionize
    from interest_lib.evaluate.job import run_evaluate
    from interest_lib.scoring.job import run_score
    from interest_lib.training.job import run_train

    if fresh:
        log.info("--fresh: removing %s, %s%s", conf.storage.warehouse, conf.train.store,
                 "" if input_path else f" and {conf.storage.raw_dir}")
        shutil.rmtree(conf.storage.warehouse, ignore_errors=True)
        from interest_lib.runs import fs

        fs.remove_tree(conf.train.store)
        if not input_path:
            shutil.rmtree(conf.storage.raw_dir, ignore_errors=True)

    def step(name, fn, describe):
        report.running.append(name)
        start = time.perf_counter()
        result = fn()
        report.seconds[name] = time.perf_counter() - start
        report.steps[name] = describe(result)
        log.info("pipeline step %s done in %.1f s: %s", name, report.seconds[name], report.steps[name])
        return result

    if input_path is None and not _has_raw_events(conf):
        step("generate", lambda: run_generate(spark, conf, tables),
             lambda r: ", ".join(f"{k}={v:,}" for k, v in r.items() if isinstance(v, int)))
    else:
        log.info("raw input present: generate skipped (use --fresh to regenerate)")
    ingest = step("ingest", lambda: run_ingest(spark, conf, tables, input_path=input_path),
                  lambda r: "already ingested" if r.skipped else r.summary())
    report.ingest = None if ingest.skipped else dataclasses.asdict(ingest)
    step("sessionize", lambda: run_sessionize(spark, conf, tables),
         lambda r: r.summary())
    def describe_featurize(r):
        text = f"{r.windows:,} user-windows, {r.migrations:,} migrations, sequences {r.sequences}"
        return text + (f"; detection vs planted: {r.detection.summary()}" if r.detection else "")

    step("featurize", lambda: run_featurize(spark, conf, tables), describe_featurize)

    def describe_train(r):
        state = "already trained" if r.skipped else f"{r.epochs_run} epochs"
        return f"{r.model} run {r.run_id}: {state}, best validation {r.best_validation:.4f}"

    step("train_migration", lambda: run_train(spark, conf, tables, task="migration"), describe_train)
    step("train_evolution", lambda: run_train(spark, conf, tables, task="evolution"), describe_train)
    evaluation = step("evaluate", lambda: run_evaluate(spark, conf, tables),
                      lambda r: f"evaluation {r.evaluation_id}: {len(r.rows)} metrics")
    report.evaluation = evaluation.render()
    step("score", lambda: run_score(spark, conf, tables),
         lambda r: f"as of {r.as_of}: {r.eligible_users:,} eligible, {r.scored_users:,} scored, "
                   f"{r.recommendation_rows:,} recommendations; drift {r.drift}")
    for name in TABLES:
        if tables.exists(name):
            report.tables[name] = (tables.version(name), tables.read(name).count())
