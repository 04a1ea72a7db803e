"""Run inside the Airflow venv (scripts/airflow_env.sh) by test_scheduling.py: load a DAG file the way
Airflow's DAG processor does and write what the test asserts on as JSON.

    python airflow_dag_graph.py DAG_FILE DAG_ID OUT_JSON --param jobs_dir=/repo/jobs [--variable k=v]

Written out, per task: operator class, upstream/downstream ids, retries and delay, the Spark
connection, the templated fields as written and rendered twice (a scheduled run with a logical
date, and an Airflow 3 manual run without one), and the spark-submit command line that the
provider's own hook builds from the rendered fields. Also: import errors, the DAG after Airflow's
serialization round trip (what the scheduler and UI see), checked against Airflow's DAG schema,
and the Spark connection the file's DAGs pick when no environment variable names one.
No database and no Airflow services are needed.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import importlib.util
import json
import os
from copy import deepcopy
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

LOGICAL_DATE = datetime(2026, 3, 1, tzinfo=timezone.utc)
MANUAL_RUN_AFTER = datetime(2026, 3, 7, 15, 30, tzinfo=timezone.utc)
TEMPLATED = ("application", "py_files", "packages", "name", "application_args", "conf", "env_vars")


class _VariableStub:
    """``var.value`` in a template context, backed by a dict instead of the Airflow API server."""

    def __init__(self, values: dict[str, str]):
        self._values = values

    def get(self, key, default_var=None):
        return self._values.get(key, default_var)


def _load(dag_file: str):
    try:  # Airflow 3: examples are never loaded into a DagBag given a path
        from airflow.dag_processing.dagbag import DagBag

        return DagBag(dag_folder=dag_file)
    except ImportError:  # Airflow 2
        from airflow.models.dagbag import DagBag

        return DagBag(dag_folder=dag_file, include_examples=False)


def _serialize(dag) -> dict:
    try:  # Airflow 3
        from airflow.serialization.serialized_objects import DagSerialization as Ser
    except ImportError:  # Airflow 2
        from airflow.serialization.serialized_objects import SerializedDAG as Ser
    from airflow.serialization.json_schema import load_dag_schema

    data = Ser.to_dict(dag)
    load_dag_schema().validate(data)
    back = Ser.from_dict(data)
    return {t.task_id: {"task_type": getattr(t, "task_type", type(t).__name__),
                        "upstream": sorted(t.upstream_task_ids),
                        "retries": t.retries} for t in back.tasks}


def _render(dag, task_id: str, context: dict) -> dict:
    # Render a copy: rendering replaces the templated attributes in place.
    task = deepcopy(dag.get_task(task_id))
    task.render_template_fields(context, dag.get_template_env())
    out = {name: getattr(task, name) for name in TEMPLATED}
    hook = task._get_hook()
    out["command"] = hook._build_spark_submit_command(task.application)
    return out


def _default_conn_ids(dag_file: str) -> list[str]:
    """The tasks' Spark connection when INTEREST_EVOLUTION_SPARK_CONN_ID is not set."""
    saved = os.environ.pop("INTEREST_EVOLUTION_SPARK_CONN_ID", None)
    try:
        spec = importlib.util.spec_from_file_location("_dag_with_defaults", dag_file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        dags = [v for v in vars(module).values() if hasattr(v, "dag_id") and hasattr(v, "tasks")]
        return sorted({t._conn_id for d in dags for t in d.tasks})
    finally:
        if saved is not None:
            os.environ["INTEREST_EVOLUTION_SPARK_CONN_ID"] = saved


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dag_file")
    parser.add_argument("dag_id")
    parser.add_argument("out")
    parser.add_argument("--param", action="append", default=[], help="trigger-time DAG param k=v")
    parser.add_argument("--variable", action="append", default=[], help="Airflow Variable k=v")
    args = parser.parse_args()
    params_given = dict(p.split("=", 1) for p in args.param)
    variables = dict(v.split("=", 1) for v in args.variable)

    bag = _load(args.dag_file)
    result: dict = {
        "airflow_version": md.version("apache-airflow"),
        "provider_version": md.version("apache-airflow-providers-apache-spark"),
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        "dag_ids": sorted(bag.dags),
    }
    dag = bag.dags.get(args.dag_id)
    if dag is not None:
        params = dict(dag.params.dump() if hasattr(dag.params, "dump") else dag.params)
        params.update(params_given)
        var = {"value": _VariableStub(variables), "json": _VariableStub({})}
        scheduled = {"params": params, "var": var, "logical_date": LOGICAL_DATE,
                     "ds": LOGICAL_DATE.strftime("%Y-%m-%d"),
                     "data_interval_start": LOGICAL_DATE,
                     "data_interval_end": LOGICAL_DATE + timedelta(days=1),
                     "dag_run": SimpleNamespace(run_after=LOGICAL_DATE + timedelta(days=1),
                                                logical_date=LOGICAL_DATE)}
        # Airflow 3: a run triggered without a logical date has no ds / logical_date / data interval.
        manual = {"params": params, "var": var,
                  "dag_run": SimpleNamespace(run_after=MANUAL_RUN_AFTER, logical_date=None)}
        result["dag"] = {
            "schedule": str(getattr(dag, "schedule", None) or getattr(dag, "timetable", "")),
            "timetable": type(dag.timetable).__name__,
            "dagrun_timeout_s": dag.dagrun_timeout.total_seconds() if dag.dagrun_timeout else None,
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "params": sorted(dag.params.keys()),
            "logical_date": LOGICAL_DATE.isoformat(),
            "manual_run_after": MANUAL_RUN_AFTER.isoformat(),
        }
        result["tasks"] = {
            t.task_id: {
                "operator": f"{type(t).__module__}.{type(t).__name__}",
                "upstream": sorted(t.upstream_task_ids),
                "downstream": sorted(t.downstream_task_ids),
                "retries": t.retries,
                "trigger_rule": str(getattr(t.trigger_rule, "value", t.trigger_rule)),
                "retry_delay_s": t.retry_delay.total_seconds() if isinstance(t.retry_delay, timedelta)
                else float(t.retry_delay),
                "conn_id": t._conn_id,
                "raw": {name: getattr(t, name) for name in TEMPLATED},
                "scheduled": _render(dag, t.task_id, scheduled),
                "manual": _render(dag, t.task_id, manual),
            }
            for t in dag.tasks
        }
        result["serialized"] = _serialize(dag)
        result["default_conn_ids"] = _default_conn_ids(args.dag_file)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=1, default=str)


if __name__ == "__main__":
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    main()
