"""Airflow DAG: the production pipeline, one ``spark-submit jobs/<job>.py`` per stage.

    ingest -> sessionize -> featurize -> {train_migration, train_evolution} -> evaluate -> score
    score -> optimize
    score -> monitor -(drift: monitor failed)-> {retrain_migration, retrain_evolution} -> reevaluate -> rescore

``monitor`` runs ``interest monitor``: exit 0 when the served model holds up against the best
baseline, exit 1 when it has been below it for ``monitor.weeks`` weeks (the drift series every
score appends to gold.model_metrics). It has no retries (a decision, not a flaky failure); the
retrain branch runs only when it failed (``trigger_rule="all_failed"``), else it is skipped.
The branch retrains both models from scratch (``--fresh``) under the run id
``interest-<date>-retrain``, evaluates them and rescores the day. (Any failure of ``monitor``,
exit 1 or an error, takes the branch: retraining is the safe answer to an unreadable series.)

A second DAG, ``interest_evolution_stream`` (:func:`build_stream_dag`), runs the streaming job
every 15 minutes: ``interest stream --trigger available_now`` takes every file landed in
``<raw_root>/landing`` since the previous run (its checkpoint, under the warehouse, carries the
position between runs; a retry or a run after a crash appends nothing twice: Delta app
transactions per micro-batch) through bronze, sessions, profiles, migration alerts and scores,
then stops. At most one run is active at a time (a run still draining a backlog delays the next
one instead of racing it for the checkpoint), and missed intervals are not caught up (the next
run takes everything landed meanwhile).

``generate`` (the synthetic store) is not scheduled. Every job gets the run's date so a rerun or a
retry of the same day writes nothing twice: ``--run-id interest-<date>`` keys ingest's Delta
transaction, the training run store and the scoring run; ingest reads that day's folder
``<raw_root>/<date>``; score runs ``--as-of`` the end of the data interval and replaces that
as-of date's partition.

Settings, each resolved when a task runs (first non-empty wins):
    1. the DAG param of the same name, given when triggering a run (UI form or API);
    2. the Airflow Variable ``interest_evolution_<name>`` (or env ``AIRFLOW_VAR_INTEREST_EVOLUTION_<NAME>``);
    3. the default in :data:`SETTINGS`.
The Spark connection is not a templated field, so it is read when the file is parsed:
env ``INTEREST_EVOLUTION_SPARK_CONN_ID`` (default ``spark_default``).

The pseudonymisation key (``INTEREST_PSEUDONYM_KEY``) is not passed here: it must be in the
Airflow worker's environment (client mode) or the cluster's driver environment, never in a file.

Works with Airflow 3 (``airflow.sdk``) and with Airflow 2.11 (the Spark provider's minimum).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

try:  # Airflow 3: the DAG authoring API lives in the Task SDK.
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2.x
    from airflow import DAG
    from airflow.models.param import Param
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

DAG_ID = "interest_evolution"
STREAM_DAG_ID = "interest_evolution_stream"
#: How often the streaming DAG runs ``interest stream --trigger available_now``.
STREAM_EVERY = timedelta(minutes=15)
VARIABLE_PREFIX = "interest_evolution_"

# name -> (default, meaning). Each is a DAG param, an Airflow Variable and a template below.
SETTINGS: dict[str, tuple[str, str]] = {
    "jobs_dir": ("/opt/interest-evolution/jobs",
                 "folder holding the project's jobs/*.py on the machine running spark-submit"),
    "py_files": ("/opt/interest-evolution/dist/interest_evolution-0.1.0-py3-none-any.whl",
                 "the project's wheel (python -m pip wheel --no-deps -w dist .), shipped with --py-files"),
    "conf_dir": ("/opt/interest-evolution/conf",
                 "the project's conf/ folder (INTEREST_CONF_DIR): a zipped wheel's own conf/ cannot be read"),
    "conf_file": ("", "extra YAML for --conf-file (empty: none)"),
    "raw_root": ("/data/interest-evolution/raw/events",
                 "root of the daily raw event folders; ingest reads <raw_root>/<run date>"),
    "spark_packages": ("io.delta:delta-spark_2.13:4.4.1",
                       "--packages for the Delta jars (empty when the cluster already has them)"),
}

ENV = "cluster"  # conf/cluster.yml: the warehouse and raw paths every executor can read
SPARK_CONN_ID = os.environ.get("INTEREST_EVOLUTION_SPARK_CONN_ID", "spark_default")

# The run's date. A manually triggered Airflow 3 run may have no logical date; it then uses the
# time it was queued for (run_after), so the rendering never fails on an undefined `ds`.
RUN_DATE = "{{ (logical_date if logical_date is defined and logical_date else dag_run.run_after) | ds }}"
AS_OF = ("{{ (data_interval_end if data_interval_end is defined and data_interval_end "
         "else dag_run.run_after) | ts }}")
RUN_ID = f"interest-{RUN_DATE}"
RETRAIN_RUN_ID = f"interest-{RUN_DATE}-retrain"

# Delta through the data source (storage.engine: auto picks it when the jars are there).
SPARK_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

DEFAULT_ARGS = {
    "owner": "interest-evolution",
    "retries": 2,
    # Long enough for a lost executor or a busy cluster to recover; every job is idempotent per
    # run id, so a retry resumes (training from its last checkpoint) instead of duplicating.
    "retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(hours=6),
    "depends_on_past": False,
}


def setting(name: str) -> str:
    """A Jinja expression for one setting: DAG param, else Airflow Variable, else default."""
    default = SETTINGS[name][0]
    return f"(params.{name} or var.value.get('{VARIABLE_PREFIX}{name}', '{default}'))"


def _template(name: str) -> str:
    return "{{ " + setting(name) + " }}"


# task id -> (entry point under jobs/, job-specific arguments). Order = pipeline order.
JOBS: dict[str, tuple[str, list[str]]] = {
    "ingest": ("ingest.py", ["--set", f"ingest.input={_template('raw_root')}/{RUN_DATE}"]),
    "sessionize": ("sessionize.py", []),
    "featurize": ("featurize.py", []),
    "train_migration": ("train_migration.py", []),
    "train_evolution": ("train_evolution.py", []),
    "evaluate": ("evaluate.py", []),
    "score": ("score.py", ["--as-of", AS_OF]),
    # Compact, Z-order and vacuum the day's tables once every job of the day has written them.
    "optimize": ("optimize.py", []),
    # Drift: exit 1 when the model has been below the best baseline for monitor.weeks weeks.
    "monitor": ("monitor.py", []),
    # The retrain branch (only when monitor failed): fresh models, their evaluation, new scores.
    "retrain_migration": ("train_migration.py", ["--fresh"]),
    "retrain_evolution": ("train_evolution.py", ["--fresh"]),
    "reevaluate": ("evaluate.py", []),
    "rescore": ("score.py", ["--as-of", AS_OF]),
}
#: Tasks of the retrain branch: their own run id (the day's models, evaluation and drift rows stay).
RETRAIN_TASKS = ("retrain_migration", "retrain_evolution", "reevaluate", "rescore")
#: Trigger rules other than all_success: the branch starts only when monitor failed (drift).
TRIGGER_RULES = {"retrain_migration": "all_failed", "retrain_evolution": "all_failed"}
#: Retries other than DEFAULT_ARGS': monitor's exit 1 is a decision, retrying it changes nothing.
RETRIES = {"monitor": 0}

# upstream -> downstream edges; the two trainings run in parallel; optimize runs last.
EDGES: list[tuple[str, str]] = [
    ("ingest", "sessionize"),
    ("sessionize", "featurize"),
    ("featurize", "train_migration"),
    ("featurize", "train_evolution"),
    ("train_migration", "evaluate"),
    ("train_evolution", "evaluate"),
    ("evaluate", "score"),
    ("score", "optimize"),
    ("score", "monitor"),
    ("monitor", "retrain_migration"),
    ("monitor", "retrain_evolution"),
    ("retrain_migration", "reevaluate"),
    ("retrain_evolution", "reevaluate"),
    ("reevaluate", "rescore"),
]


def job_arguments(task_id: str) -> list[str]:
    """The application arguments of one task (templated), common options first."""
    run_id = RETRAIN_RUN_ID if task_id in RETRAIN_TASKS else RUN_ID
    return ["--env", ENV, "--run-id", run_id, "--conf-file", _template("conf_file"), *JOBS[task_id][1]]


def _spark_submit(task_id: str, script: str, conn_id: str, application_args: list[str], name: str,
                  **kwargs) -> SparkSubmitOperator:
    """One ``spark-submit jobs/<script>`` task with the settings every task shares."""
    return SparkSubmitOperator(
        task_id=task_id,
        conn_id=conn_id,
        application=_template("jobs_dir") + "/" + script,
        py_files=_template("py_files"),
        packages=_template("spark_packages"),
        conf=dict(SPARK_CONF),
        env_vars={"INTEREST_CONF_DIR": _template("conf_dir")},
        name=name,
        application_args=application_args,
        **kwargs,
    )


def _params() -> dict:
    return {name: Param(default="", type="string", description=f"{meaning} (empty: Variable "
                        f"{VARIABLE_PREFIX}{name}, else {default or 'none'})")
            for name, (default, meaning) in SETTINGS.items()}


def build_dag(dag_id: str = DAG_ID, conn_id: str = SPARK_CONN_ID) -> DAG:
    """The pipeline DAG; ``conn_id`` is the Airflow Spark connection (master, deploy mode...)."""
    with DAG(
        dag_id=dag_id,
        description="interest-evolution: ingest -> sessionize -> featurize -> train -> evaluate -> score -> "
                    "optimize; monitor -> retrain on drift",
        doc_md=__doc__,
        schedule="@daily",
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        # The jobs share Delta tables and the latest-model pointers: one day at a time.
        max_active_runs=1,
        dagrun_timeout=timedelta(hours=24),
        default_args=DEFAULT_ARGS,
        params=_params(),
        tags=["interest-evolution", "spark"],
    ) as dag:
        tasks = {
            task_id: _spark_submit(
                task_id, script, conn_id, job_arguments(task_id), f"interest-{task_id}-{RUN_DATE}",
                **({"trigger_rule": TRIGGER_RULES[task_id]} if task_id in TRIGGER_RULES else {}),
                **({"retries": RETRIES[task_id]} if task_id in RETRIES else {}),
            )
            for task_id, (script, _) in JOBS.items()
        }
        for upstream, downstream in EDGES:
            tasks[upstream] >> tasks[downstream]
    return dag


def stream_arguments() -> list[str]:
    """The application arguments of the streaming task (templated): the landing folder is
    ``<raw_root>/landing``, as in the Databricks bundle's stream job."""
    return ["--env", ENV, "--run-id", f"interest-stream-{RUN_DATE}", "--conf-file", _template("conf_file"),
            "--trigger", "available_now", "--set", f"stream.landing={_template('raw_root')}/landing"]


def build_stream_dag(dag_id: str = STREAM_DAG_ID, conn_id: str = SPARK_CONN_ID) -> DAG:
    """The streaming DAG: one ``stream`` task, ``interest stream --trigger available_now`` every
    :data:`STREAM_EVERY`, one run at a time (see the module doc)."""
    with DAG(
        dag_id=dag_id,
        description="interest-evolution stream: landed files -> bronze -> sessions, profiles, migration "
                    "alerts, scores (availableNow, every 15 minutes)",
        doc_md=__doc__,
        schedule=STREAM_EVERY,
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        # One run at a time: two queries on one checkpoint would race for its micro-batch ids.
        max_active_runs=1,
        dagrun_timeout=timedelta(hours=3),
        default_args={**DEFAULT_ARGS, "retry_delay": timedelta(minutes=2),
                      "execution_timeout": timedelta(hours=3)},
        params=_params(),
        tags=["interest-evolution", "spark", "streaming"],
    ) as dag:
        _spark_submit("stream", "stream.py", conn_id, stream_arguments(), f"interest-stream-{RUN_DATE}")
    return dag


dag = build_dag()
stream_dag = build_stream_dag()
