"""Airflow DAG: the production pipeline, one ``spark-submit jobs/<job>.py`` per stage.

    ingest -> sessionize -> featurize -> {train_migration, train_evolution} -> evaluate -> score

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
}

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
]


def job_arguments(task_id: str) -> list[str]:
    """The application arguments of one task (templated), common options first."""
    return ["--env", ENV, "--run-id", RUN_ID, "--conf-file", _template("conf_file"), *JOBS[task_id][1]]


def build_dag(dag_id: str = DAG_ID, conn_id: str = SPARK_CONN_ID) -> DAG:
    """The pipeline DAG; ``conn_id`` is the Airflow Spark connection (master, deploy mode...)."""
    with DAG(
        dag_id=dag_id,
        description="interest-evolution: ingest -> sessionize -> featurize -> train -> evaluate -> score -> optimize",
        doc_md=__doc__,
        schedule="@daily",
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        # The jobs share Delta tables and the latest-model pointers: one day at a time.
        max_active_runs=1,
        dagrun_timeout=timedelta(hours=24),
        default_args=DEFAULT_ARGS,
        params={name: Param(default="", type="string", description=f"{meaning} (empty: Variable "
                            f"{VARIABLE_PREFIX}{name}, else {default or 'none'})")
                for name, (default, meaning) in SETTINGS.items()},
        tags=["interest-evolution", "spark"],
    ) as dag:
        tasks = {
            task_id: SparkSubmitOperator(
                task_id=task_id,
                conn_id=conn_id,
                application=_template("jobs_dir") + "/" + script,
                py_files=_template("py_files"),
                packages=_template("spark_packages"),
                conf=dict(SPARK_CONF),
                env_vars={"INTEREST_CONF_DIR": _template("conf_dir")},
                name=f"interest-{task_id}-{RUN_DATE}",
                application_args=job_arguments(task_id),
            )
            for task_id, (script, _) in JOBS.items()
        }
        for upstream, downstream in EDGES:
            tasks[upstream] >> tasks[downstream]
    return dag


dag = build_dag()
