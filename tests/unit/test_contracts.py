"""Table contracts: every catalog table declares columns, partitioning and keys; a write on
either Delta engine that breaks its table's contract fails before anything is written, with a
typed error naming the table and the column. The frames here are schemas only (no JVM): the
check runs before an engine touches Spark."""

from __future__ import annotations

import datetime as dt

import deltalake
import pyarrow as pa
import pytest
from pyspark.sql import types as T

from interest_lib.storage.catalog import CONTRACTS, GOLD_MODEL_METRICS, TABLES, table_path
from interest_lib.storage.contracts import (
    ColumnTypeError, ContractError, MissingColumnError, PartitioningError, UnexpectedColumnError,
    check_columns,
)
from interest_lib.storage.delta_rs import DeltaRsEngine
from interest_lib.storage.delta_spark import DeltaSparkEngine
from interest_lib.storage.engine import SchemaMismatchError

pytestmark = [pytest.mark.unit, pytest.mark.card_env]  # run again in .venv-card (pyarrow 14, pandas 2.2)

SPARK_TYPES = {"string": T.StringType(), "bigint": T.LongType(), "double": T.DoubleType(),
               "timestamp": T.TimestampType()}


class _Frame:
    """What an engine reads of a DataFrame before writing it: its schema."""

    def __init__(self, fields):
        self.schema = T.StructType(fields)

    def drop(self, column):
        return _Frame([f for f in self.schema.fields if f.name != column])


def _metrics_fields(**changes):
    """gold.model_metrics' fields, with ``name=type`` replaced, or dropped when None."""
    fields = []
    for name, kind in CONTRACTS[GOLD_MODEL_METRICS].columns:
        kind = changes.pop(name, kind)
        if kind is not None:
            fields.append(T.StructField(name, SPARK_TYPES.get(kind, kind)))
    fields += [T.StructField(name, kind) for name, kind in changes.items()]
    return fields


@pytest.fixture
def metrics_table(tmp_path):
    """A real gold.model_metrics Delta table (written by delta-rs) at version 0."""
    path = table_path(str(tmp_path / "warehouse"), GOLD_MODEL_METRICS)
    row = {"evaluation_id": "e1", "model": "m", "kind": "model", "task": "migration", "slice": "all",
           "metric": "hr@1", "value": 0.5, "rows": 10, "run_id": "r", "table_version": 3,
           "evaluated_at": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)}
    deltalake.write_deltalake(path, pa.Table.from_pylist([row]))
    return path


ENGINES = [pytest.param(DeltaRsEngine, id="delta-rs"), pytest.param(DeltaSparkEngine, id="delta-spark")]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("changes, error, column", [
    ({"value": None}, MissingColumnError, "value"),
    ({"rows": "string"}, ColumnTypeError, "rows"),
    ({"score": T.DoubleType()}, UnexpectedColumnError, "score"),
])
def test_a_write_that_breaks_the_contract_fails_naming_table_and_column(metrics_table, engine, changes,
                                                                       error, column):
    frame = _Frame(_metrics_fields(**changes))
    with pytest.raises(error) as err:
        engine(spark=None).write(frame, metrics_table, "append", (), None, GOLD_MODEL_METRICS)
    assert (err.value.table, err.value.column) == (GOLD_MODEL_METRICS, column)
    assert GOLD_MODEL_METRICS in str(err.value) and repr(column) in str(err.value)
    assert isinstance(err.value, SchemaMismatchError)  # callers catching the old error still do
    assert deltalake.DeltaTable(metrics_table).version() == 0  # nothing was committed


@pytest.mark.parametrize("engine", ENGINES)
def test_a_merge_is_checked_without_its_delete_flag(metrics_table, engine):
    frame = _Frame(_metrics_fields(value="string") + [T.StructField("_delete", T.BooleanType())])
    with pytest.raises(ColumnTypeError, match="'value' is string, the contract says double"):
        engine(spark=None).merge(frame, metrics_table, ("evaluation_id",), "_delete", (), None,
                                 GOLD_MODEL_METRICS)


@pytest.mark.parametrize("engine", ENGINES)
def test_partitioning_other_than_the_contract_is_refused(tmp_path, engine):
    frame = _Frame(_metrics_fields())
    with pytest.raises(PartitioningError, match="gold.model_metrics: written partitioned by \\['model'\\]"):
        engine(spark=None).write(frame, str(tmp_path / "t"), "append", ("model",), None, GOLD_MODEL_METRICS)


def test_every_problem_is_listed_and_the_first_missing_column_wins():
    with pytest.raises(ContractError) as err:
        check_columns("gold.model_metrics", CONTRACTS[GOLD_MODEL_METRICS],
                      [("model", "string"), ("value", "float"), ("extra", "int")])
    message = str(err.value)
    assert isinstance(err.value, MissingColumnError) and err.value.column == "evaluation_id"
    assert "'value' is float, the contract says double" in message and "unexpected column 'extra'" in message


def test_every_catalog_table_has_a_contract_whose_keys_and_partitions_are_columns():
    assert set(CONTRACTS) == set(TABLES)
    for name, contract in CONTRACTS.items():
        assert set(contract.partition_by) <= set(contract.names), name
        assert set(contract.keys) <= set(contract.names), name


def test_the_gold_schemas_come_from_the_contracts():
    from interest_lib.scoring.job import UDF_SCHEMA

    assert "`p_switch` float" in UDF_SCHEMA and "rec_scores array<float>" in UDF_SCHEMA
    assert CONTRACTS[GOLD_MODEL_METRICS].ddl().startswith("`evaluation_id` string, `model` string")


@pytest.mark.parametrize("table, schema_name", [
    ("bronze.events", "EVENT_SCHEMA"), ("silver.events_sessionized", "SESSIONIZED_EVENT_SCHEMA"),
    ("ref.items", "ITEM_SCHEMA"), ("bronze.events_quarantine", "QUARANTINE_SCHEMA"),
    ("silver.sessions", "SESSION_SCHEMA"), ("ref.planted_migrations", "PLANTED_MIGRATION_SCHEMA"),
])
def test_the_canonical_spark_schemas_keep_the_contracts(table, schema_name):
    from interest_lib import schema as S

    check_columns(table, CONTRACTS[table], getattr(S, schema_name).fields)
