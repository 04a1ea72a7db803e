"""A real Spark write of a catalog table that breaks its contract fails, naming the table and
column, and leaves the table as it was; a frame that keeps it is written."""

import datetime as dt

import pytest

from interest_lib.storage.catalog import CONTRACTS, GOLD_MODEL_METRICS
from interest_lib.storage.contracts import ColumnTypeError, MissingColumnError

pytestmark = pytest.mark.spark

ROW = {"evaluation_id": "e1", "model": "m", "kind": "model", "task": "migration", "slice": "all",
       "metric": "hr@1", "value": 0.5, "rows": 10, "run_id": "r", "table_version": 3,
       "evaluated_at": dt.datetime(2026, 1, 1)}


def test_a_write_is_checked_against_its_contract(spark, tables):
    ddl = CONTRACTS[GOLD_MODEL_METRICS].ddl()
    first = tables.write(spark.createDataFrame([ROW], ddl), GOLD_MODEL_METRICS)
    assert first.version == 0
    with pytest.raises(MissingColumnError, match="gold.model_metrics: .*missing column 'run_id'") as err:
        tables.write(spark.createDataFrame([ROW], ddl).drop("run_id"), GOLD_MODEL_METRICS)
    assert (err.value.table, err.value.column) == (GOLD_MODEL_METRICS, "run_id")
    wrong = spark.createDataFrame([ROW], ddl.replace("`rows` bigint", "`rows` int"))
    with pytest.raises(ColumnTypeError, match="column 'rows' is int, the contract says bigint"):
        tables.write(wrong, GOLD_MODEL_METRICS)
    assert tables.version(GOLD_MODEL_METRICS) == 0 and tables.read(GOLD_MODEL_METRICS).count() == 1
