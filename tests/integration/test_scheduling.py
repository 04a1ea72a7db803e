"""The Airflow DAG (jobs/airflow/interest_evolution_dag.py), imported with the real apache-airflow.

Airflow lives in its own venv (scripts/airflow_env.sh: built once per machine, reused after), not in
the project's .venv: see requirements-airflow.txt for why. The module fixture builds or reuses it,
runs tests/integration/airflow_dag_graph.py there, and the tests assert on the JSON it writes; the
arguments each task would pass are then parsed by the project's own CLI, here, in the project venv.
"""

from __future__ import annotations

import ast
import json
import os
import runpy
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from unittest import mock

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "jobs" / "airflow" / "interest_evolution_dag.py"
DAG_ID = "interest_evolution"
STREAM_DAG_ID = "interest_evolution_stream"
OPERATOR = "airflow.providers.apache.spark.operators.spark_submit.SparkSubmitOperator"

# The pipeline order: generate is not scheduled; the two trainings run side by side.
EXPECTED_TASKS = {
    # task id: (entry point, upstream tasks)
    "ingest": ("ingest.py", set()),
    "sessionize": ("sessionize.py", {"ingest"}),
    "featurize": ("featurize.py", {"sessionize"}),
    "train_migration": ("train_migration.py", {"featurize"}),
    "train_evolution": ("train_evolution.py", {"featurize"}),
    "evaluate": ("evaluate.py", {"train_migration", "train_evolution"}),
    "score": ("score.py", {"evaluate"}),
    "optimize": ("optimize.py", {"score"}),
    "monitor": ("monitor.py", {"score"}),
    "retrain_migration": ("train_migration.py", {"monitor"}),
    "retrain_evolution": ("train_evolution.py", {"monitor"}),
    "reevaluate": ("evaluate.py", {"retrain_migration", "retrain_evolution"}),
    "rescore": ("score.py", {"reevaluate"}),
}
#: The retrain branch: runs only when monitor failed (exit 1: drift), under its own run id.
RETRAIN = {"retrain_migration", "retrain_evolution", "reevaluate", "rescore"}
RAW_ROOT = "/landing/interest/events"      # given as an Airflow Variable
CONN_ID = "spark_interest"                 # given as INTEREST_EVOLUTION_SPARK_CONN_ID
MASTER = "spark://10.1.2.3:7077"           # that connection, as AIRFLOW_CONN_SPARK_INTEREST (never contacted)


@pytest.fixture(scope="module")
def airflow_python() -> str:
    """The Airflow venv's python: built by scripts/airflow_env.sh on first use, reused afterwards."""
    proc = subprocess.run(["bash", str(REPO / "scripts" / "airflow_env.sh")], capture_output=True,
                          text=True, timeout=840)
    if proc.returncode != 0:
        pytest.fail(f"scripts/airflow_env.sh failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]


def _graph(airflow_python: str, tmp: Path, extra_env: dict[str, str], dag_id: str = DAG_ID) -> dict:
    out = tmp / "graph.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "INTEREST_EVOLUTION_"))}
    env.update({"AIRFLOW_HOME": str(tmp / "airflow-home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "PYTHONDONTWRITEBYTECODE": "1"}, **extra_env)
    proc = subprocess.run(
        [airflow_python, str(Path(__file__).with_name("airflow_dag_graph.py")), str(DAG_FILE), dag_id,
         str(out), "--param", f"jobs_dir={REPO / 'jobs'}",
         "--variable", f"interest_evolution_raw_root={RAW_ROOT}"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp)
    if proc.returncode != 0:
        pytest.fail(f"airflow_dag_graph.py failed ({proc.returncode}):\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def graph(airflow_python, tmp_path_factory) -> dict:
    """The DAG as Airflow loads it, with a custom Spark connection id from the environment."""
    return _graph(airflow_python, tmp_path_factory.mktemp("airflow"), {
        "INTEREST_EVOLUTION_SPARK_CONN_ID": CONN_ID, f"AIRFLOW_CONN_{CONN_ID.upper()}": MASTER})


@pytest.fixture(scope="module")
def tasks(graph) -> dict:
    assert graph["import_errors"] == {}, graph["import_errors"]
    assert DAG_ID in graph["dag_ids"]
    return graph["tasks"]


def test_imports_with_real_airflow_3_and_the_spark_provider(graph):
    assert graph["import_errors"] == {}
    assert graph["dag_ids"] == sorted([DAG_ID, STREAM_DAG_ID])
    assert int(graph["airflow_version"].split(".")[0]) >= 3
    assert int(graph["provider_version"].split(".")[0]) >= 5
    dag = graph["dag"]
    assert dag["max_active_runs"] == 1 and dag["catchup"] is False
    assert {"jobs_dir", "py_files", "conf_dir", "raw_root"} <= set(dag["params"])


def test_task_graph_order(tasks):
    assert set(tasks) == set(EXPECTED_TASKS)
    for task_id, (_, upstream) in EXPECTED_TASKS.items():
        assert set(tasks[task_id]["upstream"]) == upstream, task_id
        downstream = {t for t, (_, up) in EXPECTED_TASKS.items() if task_id in up}
        assert set(tasks[task_id]["downstream"]) == downstream, task_id


def test_graph_survives_airflow_serialization(graph, tasks):
    """What the scheduler and the UI see: the serialized DAG (checked against Airflow's schema)."""
    ser = graph["serialized"]
    assert set(ser) == set(tasks)
    for task_id, info in ser.items():
        assert info["task_type"] == "SparkSubmitOperator"
        assert set(info["upstream"]) == EXPECTED_TASKS[task_id][1]
        assert info["retries"] == tasks[task_id]["retries"]


def test_every_task_is_a_spark_submit_with_retries(tasks):
    for task_id, task in tasks.items():
        assert task["operator"] == OPERATOR, task_id
        assert task["retries"] >= 1 or task_id == "monitor", task_id  # exit 1 is a decision: never retried
        assert task["retry_delay_s"] >= 60, task_id
        assert task["conn_id"] == CONN_ID, task_id
    assert tasks["monitor"]["retries"] == 0


def test_the_retrain_branch_runs_only_when_monitor_fails(tasks):
    """monitor exits 1 on drift (its task fails): the two retrains are all_failed on it, the rest of
    the branch follows them; every other task needs its upstream to succeed."""
    rules = {task_id: task["trigger_rule"] for task_id, task in tasks.items()}
    assert {t for t, r in rules.items() if r == "all_failed"} == {"retrain_migration", "retrain_evolution"}
    assert all(r == "all_success" for t, r in rules.items() if t not in {"retrain_migration", "retrain_evolution"})
    assert "--fresh" in tasks["retrain_migration"]["scheduled"]["application_args"]


def test_spark_connection_defaults_to_spark_default(graph):
    assert graph["default_conn_ids"] == ["spark_default"]


def test_every_application_is_an_existing_job_entry_point(tasks):
    for task_id, task in tasks.items():
        script = EXPECTED_TASKS[task_id][0]
        for run in ("scheduled", "manual"):
            app = Path(task[run]["application"])
            assert app == REPO / "jobs" / script, (task_id, app)
            assert app.is_file(), app
        # Without the param the default deployment path ends in the same file name.
        assert task["raw"]["application"].endswith("/" + script)


def test_spark_submit_command_built_by_the_provider(tasks):
    for task_id, task in tasks.items():
        cmd = task["scheduled"]["command"]
        rendered = task["scheduled"]
        assert cmd[0].endswith("spark-submit")
        assert cmd[cmd.index("--master") + 1] == MASTER
        assert cmd[cmd.index("--py-files") + 1] == rendered["py_files"].strip()
        assert rendered["py_files"].endswith(".whl")
        app = cmd.index(rendered["application"])
        assert cmd[app + 1:] == rendered["application_args"], task_id
        assert rendered["env_vars"]["INTEREST_CONF_DIR"]


def test_run_date_is_in_every_job_and_makes_reruns_idempotent(graph, tasks):
    day = graph["dag"]["logical_date"][:10]
    for task_id, task in tasks.items():
        raw_args = " ".join(task["raw"]["application_args"])
        assert "logical_date" in raw_args, task_id           # templated, not fixed at parse time
        args = task["scheduled"]["application_args"]
        assert args[args.index("--env") + 1] == "cluster"
        suffix = "-retrain" if task_id in RETRAIN else ""
        assert args[args.index("--run-id") + 1] == f"interest-{day}{suffix}", task_id
        assert day in task["scheduled"]["name"]
    ingest = tasks["ingest"]["scheduled"]["application_args"]
    assert f"ingest.input={RAW_ROOT}/{day}" in ingest
    for task_id in ("score", "rescore"):
        score = tasks[task_id]["scheduled"]["application_args"]
        as_of = datetime.fromisoformat(score[score.index("--as-of") + 1])
        assert as_of.isoformat() == "2026-03-02T00:00:00+00:00"  # the end of the day's data interval


def test_manual_run_without_logical_date_still_renders(graph, tasks):
    """Airflow 3 runs triggered without a logical date fall back to the time they were queued for."""
    day = graph["dag"]["manual_run_after"][:10]
    for task_id, task in tasks.items():
        args = task["manual"]["application_args"]
        suffix = "-retrain" if task_id in RETRAIN else ""
        assert args[args.index("--run-id") + 1] == f"interest-{day}{suffix}", task_id
    score = tasks["score"]["manual"]["application_args"]
    assert score[score.index("--as-of") + 1].startswith(graph["dag"]["manual_run_after"][:19])


def _job_argv(script: Path, args: list[str]) -> list[str]:
    """The argv that ``spark-submit jobs/<script> ARGS`` hands to interest_lib.cli.main."""
    seen = []
    with mock.patch("interest_lib.cli.main", side_effect=lambda argv: seen.append(list(argv)) or 0), \
            mock.patch.object(sys, "argv", [str(script), *args]), pytest.raises(SystemExit):
        runpy.run_path(str(script), run_name="__main__")
    return seen[0]


def test_the_cli_accepts_what_every_task_passes(tasks):
    from interest_lib.cli import build_parser
    from interest_lib.conf import load_config

    commands = {}
    for task_id, task in tasks.items():
        rendered = task["scheduled"]
        argv = _job_argv(Path(rendered["application"]), rendered["application_args"])
        args = build_parser().parse_args(argv)
        overrides = [*args.overrides, f"run.run_id={args.run_id}"]
        conf = load_config(env=args.env, conf_file=args.conf_file, overrides=overrides)
        assert conf.run.run_id == args.run_id
        commands[task_id] = (args.command, getattr(args, "model", None))
        if task_id == "ingest":
            assert conf.ingest.input.startswith(RAW_ROOT)
    assert commands == {
        "ingest": ("ingest", None), "sessionize": ("sessionize", None), "featurize": ("featurize", None),
        "train_migration": ("train", "migration"), "train_evolution": ("train", "evolution"),
        "evaluate": ("evaluate", None), "score": ("score", None), "optimize": ("optimize", None),
        "monitor": ("monitor", None), "retrain_migration": ("train", "migration"),
        "retrain_evolution": ("train", "evolution"), "reevaluate": ("evaluate", None), "rescore": ("score", None)}


def test_edges_literal_matches_the_graph(tasks):
    """EDGES in the DAG file is what the Databricks bundle test compares its depends_on with."""
    tree = ast.parse(DAG_FILE.read_text())
    edges = next(ast.literal_eval(node.value) for node in ast.walk(tree)
                 if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "EDGES")
    assert {(u, d) for u, d in edges} == {(u, t) for t, task in tasks.items() for u in task["upstream"]}


# --- the streaming DAG (same file): `interest stream --trigger available_now` every 15 minutes ----

@pytest.fixture(scope="module")
def stream_graph(airflow_python, tmp_path_factory) -> dict:
    """The streaming DAG as Airflow loads it (same connection settings as ``graph``)."""
    return _graph(airflow_python, tmp_path_factory.mktemp("airflow-stream"), {
        "INTEREST_EVOLUTION_SPARK_CONN_ID": CONN_ID, f"AIRFLOW_CONN_{CONN_ID.upper()}": MASTER},
        dag_id=STREAM_DAG_ID)


def test_stream_dag_runs_available_now_every_15_minutes_one_at_a_time(stream_graph):
    assert stream_graph["import_errors"] == {}
    dag = stream_graph["dag"]
    assert dag["max_active_runs"] == 1 and dag["catchup"] is False
    # A fixed 15-minute interval (Airflow's delta timetable), not a cron expression.
    assert dag["timetable"].startswith("Delta") and dag["timetable"].endswith("Timetable"), dag["timetable"]
    assert dag["schedule"] == "0:15:00", dag["schedule"]
    assert {"jobs_dir", "py_files", "conf_dir", "raw_root"} <= set(dag["params"])
    tasks = stream_graph["tasks"]
    assert set(tasks) == {"stream"}
    task = tasks["stream"]
    assert task["operator"] == OPERATOR and task["conn_id"] == CONN_ID
    assert task["upstream"] == [] and task["downstream"] == []
    assert task["retries"] >= 1 and task["retry_delay_s"] >= 60  # idempotent per micro-batch: safe to retry
    ser = stream_graph["serialized"]
    assert ser == {"stream": {"task_type": "SparkSubmitOperator", "upstream": [], "retries": task["retries"]}}


def test_stream_task_submits_the_stream_job_with_its_landing_folder(stream_graph):
    task = stream_graph["tasks"]["stream"]
    for run in ("scheduled", "manual"):
        rendered = task[run]
        assert Path(rendered["application"]) == REPO / "jobs" / "stream.py"
        assert Path(rendered["application"]).is_file()
        cmd = rendered["command"]
        assert cmd[0].endswith("spark-submit") and cmd[cmd.index("--master") + 1] == MASTER
        assert cmd[cmd.index(rendered["application"]) + 1:] == rendered["application_args"]
        args = rendered["application_args"]
        assert args[args.index("--trigger") + 1] == "available_now"
        assert f"stream.landing={RAW_ROOT}/landing" in args
    day = stream_graph["dag"]["logical_date"][:10]
    args = task["scheduled"]["application_args"]
    assert args[args.index("--run-id") + 1] == f"interest-stream-{day}"

    # The project's CLI takes exactly these arguments: the stream command, its trigger and landing.
    from interest_lib.cli import build_parser
    from interest_lib.conf import load_config

    rendered = task["scheduled"]
    parsed = build_parser().parse_args(_job_argv(Path(rendered["application"]), rendered["application_args"]))
    assert parsed.command == "stream" and parsed.trigger == "available_now"
    conf = load_config(env=parsed.env, conf_file=parsed.conf_file, overrides=list(parsed.overrides))
    assert conf.stream.landing == f"{RAW_ROOT}/landing"
