"""The pipeline on a real Spark standalone cluster (issue 7, "A real cluster in the tests").

A master and two 1-core workers run on 127.0.0.1 (tests/cluster/conftest.py). The project is
shipped as a zip with ``--py-files``, and the driver and executors run a Python that has every
dependency but not the project (tests/cluster/standalone.py), as on a cluster image built from
the requirements: whatever imports interest_lib there got it from the zip. ``jobs/run.py`` is
submitted once with ``spark-submit --master spark://... --env cluster``: generate -> ingest ->
sessionize -> featurize (with embeddings) -> train migration + evolution with TorchDistributor
``local_mode=False`` (barrier tasks on the executors, gloo world size 2) -> evaluate -> score.
One submit rather than one per job keeps the test short: each spark-submit costs a driver JVM and
two executor JVMs (~20 s on the shared 2-core development machines).

Proof that training ran on the executors, not on the driver: Spark's event log holds, for each
model, a barrier stage launched by the training backend whose two tasks (the two DDP ranks) ran on
the two different executors and succeeded. With ``local_mode=True`` there is no such stage.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from interest_lib.conf import load_config
from interest_lib.storage.catalog import (
    BRONZE_EVENTS, BRONZE_QUARANTINE, GOLD_MODEL_METRICS, GOLD_RECOMMENDATIONS, GOLD_TRAINING_SEQUENCES,
    GOLD_USER_INTEREST_SCORES, REF_ITEM_EMBEDDINGS, REF_ITEMS, SILVER_EVENTS_SESSIONIZED, SILVER_SESSIONS,
    SILVER_USER_INTEREST_WINDOWS, table_path,
)
from tests.cluster.standalone import REPO, SPARK_HOME, package_project, python_without_project
from tests.helpers import read_with_delta_rs
from tests.jvm import submit_args

pytestmark = pytest.mark.cluster

USERS = 100
EPOCHS = 2
SUBMIT_TIMEOUT_S = 600


def _settings(root: Path) -> list[str]:
    """A small store under ``root`` (absolute paths: driver and executors share this disk), and
    sizes for a 2 x 1-core cluster instead of cluster.yml's production ones."""
    return [
        f"storage.warehouse={root / 'warehouse'}", f"storage.raw_dir={root / 'raw'}",
        f"train.store={root / 'runs'}", f"report.dir={root / 'reports'}",
        f"generate.users={USERS}", "generate.days=35", "generate.mean_events_per_user=80",
        "generate.items_per_category=8", "generate.partitions=2",
        "spark.shuffle_partitions=2",            # cluster.yml's value would mean hundreds of tiny tasks
        "migration.min_group_size=2",            # a small store: smaller privacy cells so flows exist
        "train.local_mode=false", "train.num_processes=2", f"train.epochs={EPOCHS}",
        "train.batch_size=16", "train.use_gpu=cpu",
    ]


def _conf_file(root: Path) -> Path:
    """Executor resources for two 1-core, 2 GB workers whatever cluster.yml's spark.extra asks
    for a production cluster (spark.extra is applied when the job builds its session, so it would
    win over spark-submit's --executor-memory; ``--set`` cannot address its dotted keys)."""
    path = root / "cluster-test.yml"
    path.write_text(yaml.safe_dump({"spark": {"extra": {
        "spark.executor.memory": "1g", "spark.executor.cores": "1", "spark.executor.memoryOverhead": "512m",
        # Both executors are on this host: never hold a task back waiting for "its" executor.
        "spark.locality.wait": "0s",
    }}}))
    return path


def _submit(cluster, root: Path, job: str, args: list[str]) -> subprocess.CompletedProcess:
    """spark-submit ``jobs/<job>`` to the cluster with the project zipped into --py-files."""
    pkg = package_project(root / "pkg")
    python = str(python_without_project(root / "python"))
    events = root / "spark-events"
    events.mkdir(exist_ok=True)
    cmd = [
        str(SPARK_HOME / "bin" / "spark-submit"), "--master", cluster.master_url,
        "--conf", "spark.driver.host=127.0.0.1",
        "--driver-memory", "1g", "--conf", "spark.ui.enabled=false",
        *submit_args(executors=True),  # short-lived JVMs, small data: tests/jvm.py
        # A plain JSON event log: the test reads which executors ran which stage.
        "--conf", "spark.eventLog.enabled=true", "--conf", f"spark.eventLog.dir=file://{events}",
        "--conf", "spark.eventLog.compress=false", "--conf", "spark.eventLog.rolling.enabled=false",
        "--py-files", str(pkg), str(REPO / "jobs" / job), *args,
    ]
    env = dict(cluster.env, PYSPARK_PYTHON=python, PYSPARK_DRIVER_PYTHON=python,
               # a cluster has no development key: it comes from the environment (cluster.yml)
               INTEREST_PSEUDONYM_KEY="cluster-test-key")
    env.pop("INTEREST_CONF_DIR", None)  # base.yml and cluster.yml are read from inside the zip
    out, err = root / f"{Path(job).stem}.out", root / f"{Path(job).stem}.err"
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            proc.wait(timeout=SUBMIT_TIMEOUT_S)
        finally:
            if proc.poll() is None:  # timed out (or the test was interrupted): the JVM and its Python
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, out.read_text(), err.read_text())


def _event_log(root: Path) -> list[dict]:
    logs = [p for p in (root / "spark-events").iterdir() if p.is_file() and not p.name.startswith(".")]
    assert len(logs) == 1, logs
    return [json.loads(line) for line in logs[0].read_text().splitlines() if line.strip()]


def _barrier_stages(events: list[dict]) -> dict:
    """stage id -> (stage name, number of tasks, {executor id: task end reason}) of barrier stages."""
    stages, tasks = {}, defaultdict(dict)
    for e in events:
        if e["Event"] == "SparkListenerStageCompleted":
            info = e["Stage Info"]
            if any(rdd.get("Barrier") for rdd in info["RDD Info"]):
                stages[info["Stage ID"]] = (info["Stage Name"], info["Number of Tasks"])
        elif e["Event"] == "SparkListenerTaskEnd":
            tasks[e["Stage ID"]][e["Task Info"]["Executor ID"]] = e["Task End Reason"]["Reason"]
    return {sid: (name, n, tasks[sid]) for sid, (name, n) in stages.items()}


def _driver_conf(stdout: str) -> dict:
    """The resolved configuration the driver logged when the job started."""
    marker = "job run starting; configuration: "
    line = next(line for line in stdout.splitlines() if marker in line)
    return json.loads(line.split(marker, 1)[1])


def _rows(warehouse: Path, name: str):
    return read_with_delta_rs(table_path(str(warehouse), name))


def test_pipeline_runs_on_standalone_cluster(standalone_cluster, tmp_path):
    cluster, root = standalone_cluster, tmp_path
    warehouse = root / "warehouse"
    settings, conf_file = _settings(root), _conf_file(root)

    started = time.perf_counter()
    proc = _submit(cluster, root, "run.py", ["--env", "cluster", "--conf-file", str(conf_file),
                                             *[x for s in settings for x in ("--set", s)]])
    seconds = time.perf_counter() - started
    hint = ""
    if "No module named 'interest_lib'" in proc.stdout + proc.stderr:
        hint = ("\nA process on the executors could not import interest_lib from the --py-files zip "
                "(TorchDistributor's torchrun ranks inherit only the environment, not the Python "
                "worker's sys.path): see export_package_path in interest_lib/training/backend.py.")
    assert proc.returncode == 0, (f"spark-submit jobs/run.py exited {proc.returncode}{hint}\n"
                                  f"stdout:\n{proc.stdout[-6000:]}\nstderr:\n{proc.stderr[-6000:]}")
    print(f"spark-submit jobs/run.py on {cluster.master_url}: {seconds:.0f} s")
    print(proc.stdout[proc.stdout.find("interest-evolution pipeline report"):][:3000])

    # The driver resolved base.yml + cluster.yml (from the zip) + the test's file + overrides,
    # exactly as this checkout resolves them.
    expected = load_config(env="cluster", conf_file=str(conf_file), overrides=settings,
                           conf_dir=REPO / "conf").to_dict()
    expected = json.loads(json.dumps(expected, default=str))
    assert _driver_conf(proc.stdout) == expected

    # The application ran on the cluster with both executors (one core each) and finished.
    state = cluster.state()
    assert state["aliveworkers"] == 2 and not state["activeapps"]
    apps = state["completedapps"]
    assert len(apps) == 1 and apps[0]["state"] == "FINISHED" and apps[0]["cores"] == 2, apps
    assert apps[0]["memoryperexecutor"] == 1024, apps  # spark.extra reached the executors' request

    # Training: one barrier stage per model, launched by the shipped package's training backend,
    # whose two tasks (the two DDP ranks) ran on the two different executors and succeeded.
    events = _event_log(root)
    executors = {e["Executor ID"] for e in events if e["Event"] == "SparkListenerExecutorAdded"}
    assert len(executors) == 2, executors
    barrier = _barrier_stages(events)
    assert len(barrier) == 2, barrier
    for name, n_tasks, ends in barrier.values():
        assert "interest_lib.zip/interest_lib/training/backend.py" in name, name
        assert n_tasks == 2 and set(ends) == executors and set(ends.values()) == {"Success"}, (name, ends)
    assert proc.stdout.count("Started distributed training with 2 executor processes") == 2

    # Each model trained its epochs (rank 0 wrote the per-epoch log and the final model).
    runs = root / "runs"
    for task, model in (("migration", "migration_transformer"), ("evolution", "evolution_gru")):
        pointer = json.loads((runs / f"latest-{task}.json").read_text())
        run = runs / pointer["run_id"]
        assert pointer["model"] == model and (run / "model.pt").is_file()
        history = [json.loads(line) for line in (run / "epochs.jsonl").read_text().splitlines()]
        assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1)), history
        assert all(h["samples"] > 0 for h in history)
        train_conf = json.loads((run / "lineage.json").read_text())["conf"]["train"]
        assert train_conf["local_mode"] is False and train_conf["num_processes"] == 2

    # The output tables, read with delta-rs (no Spark), with sensible row counts.
    bronze = _rows(warehouse, BRONZE_EVENTS)
    assert bronze.num_rows > USERS * 20
    assert _rows(warehouse, BRONZE_QUARANTINE).num_rows > 0
    assert _rows(warehouse, SILVER_EVENTS_SESSIONIZED).num_rows == bronze.num_rows
    assert 0 < _rows(warehouse, SILVER_SESSIONS).num_rows < bronze.num_rows
    assert _rows(warehouse, SILVER_USER_INTEREST_WINDOWS).num_rows >= USERS * 3
    assert _rows(warehouse, REF_ITEM_EMBEDDINGS).num_rows == _rows(warehouse, REF_ITEMS).num_rows > 0
    splits = set(_rows(warehouse, GOLD_TRAINING_SEQUENCES).column("split").to_pylist())
    assert {"train", "validation", "test"} <= splits
    metrics = _rows(warehouse, GOLD_MODEL_METRICS)
    assert {"migration_transformer", "evolution_gru"} <= set(metrics.column("model").to_pylist())
    scores = _rows(warehouse, GOLD_USER_INTEREST_SCORES)
    users = len(set(bronze.column("user_id").to_pylist()))
    assert 0 < scores.num_rows <= users
    assert set(scores.column("migration_model").to_pylist()) == {"migration_transformer"}
    assert set(scores.column("evolution_model").to_pylist()) == {"evolution_gru"}
    recommendations = _rows(warehouse, GOLD_RECOMMENDATIONS)
    assert recommendations.num_rows > 0
    assert set(recommendations.column("user_id").to_pylist()) <= set(scores.column("user_id").to_pylist())
