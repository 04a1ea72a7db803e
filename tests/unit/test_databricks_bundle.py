"""The Databricks Asset Bundle (databricks.yml): every task runs an entry point that exists, with
arguments the CLI accepts, in the Airflow DAG's order; dev and prod targets; and, with the
databricks-bundles package (the bundle schema as generated Python classes, offline), the job
definition is checked field by field against Databricks' own job model."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
import yaml

from interest_lib.cli import TASKS, build_parser
from interest_lib.conf import load_config

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "databricks.yml"
DAG_FILE = REPO / "jobs" / "airflow" / "interest_evolution_dag.py"
JOB = "interest_evolution"
RUN_DATE = "{{job.parameters.run_date}}"

# Keys of the bundle's root and of a target (databricks bundle schema).
ROOT_KEYS = {"bundle", "include", "variables", "artifacts", "resources", "targets", "workspace", "sync",
             "permissions", "run_as", "presets", "experimental", "python", "scripts"}
TARGET_KEYS = {"mode", "default", "workspace", "variables", "resources", "artifacts", "bundle", "cluster_id",
               "compute_id", "git", "permissions", "presets", "run_as", "sync"}


@pytest.fixture(scope="module")
def bundle() -> dict:
    return yaml.safe_load(BUNDLE.read_text())


@pytest.fixture(scope="module")
def job(bundle) -> dict:
    return bundle["resources"]["jobs"][JOB]


@pytest.fixture(scope="module")
def tasks(job) -> dict:
    return {t["task_key"]: t for t in job["tasks"]}


def _setup_kwargs() -> dict:
    """The literal keyword arguments of setup(...) in setup.py (read, not executed)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    out = {}
    for kw in call.keywords:
        try:
            out[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:  # e.g. find_packages(...)
            pass
    return out


def _console_scripts() -> dict[str, str]:
    entries = _setup_kwargs()["entry_points"]["console_scripts"]
    return dict(e.replace(" ", "").split("=", 1) for e in entries)


def _job_prefix(task_key: str) -> list[str]:
    """The arguments jobs/<task_key>.py puts before the user's: main(["train", "--model", ...])."""
    tree = ast.parse((REPO / "jobs" / f"{task_key}.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "main")
    return [ast.literal_eval(e) for e in call.args[0].elts if not isinstance(e, ast.Starred)]


#: Tasks of the retrain branch: the entry point they share with a daily task, under the run id
#: interest-<run_date>-retrain (the DAG's RETRAIN_TASKS).
RETRAIN_JOBS = {"retrain_migration": "train_migration", "retrain_evolution": "train_evolution",
                "reevaluate": "evaluate", "rescore": "score"}


def _dag_edges() -> set[tuple[str, str]]:
    tree = ast.parse(DAG_FILE.read_text())
    node = next(n for n in ast.walk(tree)
                if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "EDGES")
    return {tuple(e) for e in ast.literal_eval(node.value)}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def test_root_and_targets(bundle):
    assert set(bundle) <= ROOT_KEYS
    assert bundle["bundle"]["name"]
    targets = bundle["targets"]
    assert {"dev", "prod"} <= set(targets)
    assert targets["dev"]["mode"] == "development" and targets["prod"]["mode"] == "production"
    assert [name for name, t in targets.items() if t.get("default")] == ["dev"]
    for target in targets.values():
        assert set(target) <= TARGET_KEYS


def test_every_task_runs_the_interest_console_script_of_the_wheel(bundle, tasks):
    scripts = _console_scripts()
    module, func = scripts["interest"].split(":")
    assert callable(getattr(importlib.import_module(module), func))
    dist = _normalize(_setup_kwargs()["name"])
    for key, task in tasks.items():
        wheel = task["python_wheel_task"]
        assert wheel["entry_point"] in scripts, key
        assert _normalize(wheel["package_name"]) == dist, key
        assert {"whl": "./dist/*.whl"} in task["libraries"], key
    (artifact,) = bundle["artifacts"].values()
    assert artifact["type"] == "whl"
    assert (REPO / artifact["path"] / "setup.py").is_file()
    assert "-w dist" in artifact["build"]


def test_tasks_are_the_jobs_entry_points_with_arguments_the_cli_accepts(tasks):
    assert set(tasks) == {t for edge in _dag_edges() for t in edge}
    for key, task in tasks.items():
        params = task["python_wheel_task"]["parameters"]
        # The same subcommand (and model) as the spark-submit entry point jobs/<task_key>.py.
        script = RETRAIN_JOBS.get(key, key)
        assert (REPO / "jobs" / f"{script}.py").is_file(), key
        prefix = _job_prefix(script)
        assert params[:len(prefix)] == prefix, key
        assert params[0] in TASKS
        args = build_parser().parse_args(params)
        assert args.env == "databricks", key
        assert args.run_id == f"interest-{RUN_DATE}" + ("-retrain" if key in RETRAIN_JOBS else ""), key
        conf = load_config(env=args.env, conf_file=args.conf_file,
                           overrides=[*args.overrides, f"run.run_id={args.run_id}"])
        assert conf.storage.engine == "delta-spark"
        if key == "ingest":
            assert conf.ingest.input == "${var.raw_root}/" + RUN_DATE
        if key in ("score", "rescore"):
            assert args.as_of == RUN_DATE + "T00:00:00"
        if key.startswith("retrain_"):
            assert args.fresh, key


def test_dependency_order_matches_the_airflow_dag(tasks):
    edges = {(dep["task_key"], key) for key, task in tasks.items() for dep in task.get("depends_on", [])}
    assert edges == _dag_edges()
    assert edges >= {("ingest", "sessionize"), ("sessionize", "featurize"), ("featurize", "train_migration"),
                     ("featurize", "train_evolution"), ("train_migration", "evaluate"),
                     ("train_evolution", "evaluate"), ("evaluate", "score")}
    # Listed in an order where every task comes after what it depends on.
    seen = set()
    for key, task in tasks.items():
        assert {d["task_key"] for d in task.get("depends_on", [])} <= seen, key
        seen.add(key)


def test_the_retrain_branch_runs_only_when_monitor_fails(tasks):
    """interest monitor exits 1 on drift: the retrains run only then (ALL_FAILED), the rest of the
    branch follows them, every other task needs its upstream to succeed (the default)."""
    conditional = {key: task["run_if"] for key, task in tasks.items() if "run_if" in task}
    assert conditional == {"retrain_migration": "ALL_FAILED", "retrain_evolution": "ALL_FAILED"}
    assert [d["task_key"] for d in tasks["retrain_migration"]["depends_on"]] == ["monitor"]
    assert tasks["monitor"]["python_wheel_task"]["parameters"][0] == "monitor"


def test_job_cluster_retries_and_run_date(job, tasks):
    clusters = {c["job_cluster_key"] for c in job["job_clusters"]}
    for key, task in tasks.items():
        assert task["job_cluster_key"] in clusters, key
        if key == "monitor":  # exit 1 is the drift decision: retrying it changes nothing
            assert task["max_retries"] == 0
            continue
        assert task["max_retries"] >= 1 and task["min_retry_interval_millis"] >= 60_000, key
    assert job["max_concurrent_runs"] == 1
    (run_date,) = [p for p in job["parameters"] if p["name"] == "run_date"]
    assert run_date["default"].startswith("{{job.")


def test_variables_referenced_are_defined(bundle):
    used = set(re.findall(r"\$\{var\.([A-Za-z0-9_]+)\}", BUNDLE.read_text()))
    assert used and used <= set(bundle["variables"])
    for target in bundle["targets"].values():
        assert set(target.get("variables", {})) <= set(bundle["variables"])


def test_job_matches_the_databricks_bundle_schema(bundle, job):
    """databricks-bundles' classes are generated from the bundle JSON schema: unknown fields,
    wrong types, missing required fields and bad enum values raise."""
    jobs_model = pytest.importorskip("databricks.bundles.jobs",
                                     reason="databricks-bundles (the [dev] extra) is not installed")
    jobs_model.Job.from_dict(job)
    for target in bundle["targets"].values():
        for override in target.get("resources", {}).get("jobs", {}).values():
            jobs_model.Job.from_dict(override)


def test_the_stream_job_runs_interest_stream_available_now(bundle):
    """The streaming job: the console script's ``stream`` subcommand (as jobs/stream.py), once per
    schedule with the availableNow trigger, on delta-spark, one run at a time, schema-valid."""
    job = bundle["resources"]["jobs"]["interest_evolution_stream"]
    (task,) = job["tasks"]
    params = task["python_wheel_task"]["parameters"]
    assert task["python_wheel_task"]["entry_point"] in _console_scripts()
    assert params[:len(_job_prefix("stream"))] == _job_prefix("stream")
    args = build_parser().parse_args(params)
    assert (args.command, args.env, args.trigger) == ("stream", "databricks", "available_now")
    conf = load_config(env=args.env, overrides=args.overrides)
    assert conf.storage.engine == "delta-spark" and conf.stream.landing == "${var.raw_root}/landing"
    assert job["max_concurrent_runs"] == 1 and task["max_retries"] >= 1
    assert {"whl": "./dist/*.whl"} in task["libraries"]
    jobs_model = pytest.importorskip("databricks.bundles.jobs",
                                     reason="databricks-bundles (the [dev] extra) is not installed")
    jobs_model.Job.from_dict(job)
