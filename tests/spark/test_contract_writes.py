"""A real Spark write of a catalog table that breaks its contract fails, naming the table and
column, and leaves the table as it was; a frame that keeps it is written."""

import datetime as dt

import pytest

from interest_lib.storage.catalog import CONTRACTS, GOLD_MODEL_METRICS
from interest_lib.storage.contracts import ColumnTypeError, MissingColumnError

pytestmark = [pytest.mark.spark, pytest.mark.card_env]

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


OLD_COLUMNS = [c for c in CONTRACTS[GOLD_MODEL_METRICS].names if c not in CONTRACTS[GOLD_MODEL_METRICS].added]


def test_an_old_model_metrics_table_gains_the_added_columns_on_the_next_write(spark, tables, engine):
    """A gold.model_metrics written before the CI and drift columns existed (created here by the
    engine itself with the old columns) takes a full-contract append: the columns are added in
    their own commit, old rows read null, new rows keep their values, on both engines; the
    report's Spark-free reader sees the same."""
    from interest_lib.report.load import ReportInputs, pin_versions
    from interest_lib.storage.engine import SchemaMismatchError

    contract = CONTRACTS[GOLD_MODEL_METRICS]
    path = tables.path(GOLD_MODEL_METRICS)
    old = spark.createDataFrame([ROW], contract.ddl(OLD_COLUMNS))
    tables.engine.write(old, path, "append", (), None, "legacy.model_metrics")  # outside the catalog: no contract
    assert tables.read(GOLD_MODEL_METRICS).columns == OLD_COLUMNS

    new = {**ROW, "evaluation_id": "e2", "ci_low": 0.4, "ci_high": 0.6, "series": "drift",
           "week_start": dt.datetime(2026, 1, 5)}
    result = tables.write(spark.createDataFrame([new], contract.ddl()), GOLD_MODEL_METRICS)
    assert result.version == 2  # 0 create, 1 add columns, 2 the append
    assert [h["operation"] for h in tables.history(GOLD_MODEL_METRICS)][:2][1].upper().replace(" ", "") in (
        "ADDCOLUMNS", "ADD_COLUMNS", "ADDCOLUMN")
    table = tables.read(GOLD_MODEL_METRICS)
    assert table.columns == contract.names
    rows = {r["evaluation_id"]: r for r in table.collect()}
    assert (rows["e1"]["ci_low"], rows["e1"]["ci_high"], rows["e1"]["series"], rows["e1"]["week_start"]) == (None,) * 4
    assert (rows["e2"]["ci_low"], rows["e2"]["ci_high"], rows["e2"]["series"]) == (0.4, 0.6, "drift")
    assert rows["e2"]["week_start"] == dt.datetime(2026, 1, 5) and rows["e1"]["value"] == 0.5

    wh = tables.conf.warehouse
    frame = ReportInputs(wh, pin_versions(wh, names=[GOLD_MODEL_METRICS])).read(
        GOLD_MODEL_METRICS, ["evaluation_id", "ci_low", "series"])
    assert frame.sort_values("evaluation_id").ci_low.isna().tolist() == [True, False]

    # a MERGE into an old-schema table evolves it the same way (the matching key replaced)
    merged = tables.path("test.old_metrics_for_merge")
    tables.engine.write(old, merged, "append", (), None, "legacy.model_metrics")
    update = spark.createDataFrame([{**new, "evaluation_id": "e1"}], contract.ddl())
    tables.engine.merge(update, merged, contract.keys, None, (), None, GOLD_MODEL_METRICS)
    after = tables.engine.read(merged).collect()
    assert [(r["evaluation_id"], r["ci_low"], r["series"]) for r in after] == [("e1", 0.4, "drift")]

    # a table lacking a column that was never declared added still fails, naming it
    other = tables.path("test.metrics_without_rows")
    tables.engine.write(spark.createDataFrame([ROW], contract.ddl(OLD_COLUMNS)).drop("rows"), other,
                        "append", (), None, "legacy.other")
    with pytest.raises(SchemaMismatchError, match="unexpected \\['ci_high', 'ci_low', 'rows', 'series', 'week_start'\\]"):
        tables.engine.write(spark.createDataFrame([new], contract.ddl()), other, "append", (), None, GOLD_MODEL_METRICS)
    assert tables.engine.version(other) == 0  # nothing added, nothing appended


def test_an_old_scores_table_gains_scoring_path_when_a_partition_is_replaced(spark, tables, engine):
    """gold.user_interest_scores written before ``scoring_path`` existed (partitioned by
    as_of_date) takes scoring's partition replacement with the column: added, old partition's rows
    read null, the replaced partition holds the new rows."""
    from interest_lib.storage.catalog import GOLD_USER_INTEREST_SCORES

    contract = CONTRACTS[GOLD_USER_INTEREST_SCORES]
    old_columns = [c for c in contract.names if c not in contract.added]
    row = {c: None for c in contract.names}
    row.update(user_id="u1", as_of=dt.datetime(2026, 1, 4), window=3, as_of_date=dt.date(2026, 1, 4))
    old = spark.createDataFrame([row, {**row, "as_of_date": dt.date(2026, 1, 11)}], contract.ddl(old_columns))
    tables.engine.write(old, tables.path(GOLD_USER_INTEREST_SCORES), "append", ("as_of_date",), None, "legacy.scores")

    new = spark.createDataFrame([{**row, "user_id": "u2", "as_of_date": dt.date(2026, 1, 11), "scoring_path": "cold_start"}],
                                contract.ddl())
    tables.write(new, GOLD_USER_INTEREST_SCORES, mode="overwrite-partitions", partition_by=["as_of_date"])
    got = {(r["user_id"], str(r["as_of_date"])): r["scoring_path"] for r in tables.read(GOLD_USER_INTEREST_SCORES).collect()}
    assert got == {("u1", "2026-01-04"): None, ("u2", "2026-01-11"): "cold_start"}
