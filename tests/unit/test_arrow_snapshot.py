"""The Spark-free Delta snapshot reader on small real Delta tables (written with delta-rs):
partition values that need URL quoting, null partitions, partition types, time travel, SQL on
both engines, and the result types made plain."""

import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import DeltaProtocolError

from interest_lib.storage.arrow_snapshot import (
    delta_rs_engine_usable, plain_type, plain_types, query, read_snapshot, snapshot_dataset,
)

pytestmark = [pytest.mark.unit, pytest.mark.card_env]  # run again in .venv-card (pyarrow 14, pandas 2.2)

ODD = "a b/c=d%e"  # a space, a slash, an equals sign and a percent sign: quoted in the folder name
CITIES = (ODD, "plain", None)
DAYS = (date(2026, 1, 1), date(2026, 1, 2))
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
SCHEMA = pa.schema([
    ("k", pa.int64()), ("city", pa.string()), ("day", pa.date32()), ("window", pa.int32()),
    ("ts", pa.timestamp("us", tz="UTC")), ("tags", pa.list_(pa.string())),
])
PARTITIONS = ["city", "day"]


def _rows(keys):
    """Row k: city CITIES[k % 3], day DAYS[k % 2] (None for every 5th), window k // 4."""
    keys = list(keys)
    return pa.table({
        "k": keys,
        "city": [CITIES[k % 3] for k in keys],
        "day": [None if k % 5 == 0 else DAYS[k % 2] for k in keys],
        "window": [k // 4 for k in keys],
        "ts": [START + timedelta(hours=k) for k in keys],
        "tags": [[f"t{k}", ODD] if k % 2 else [] for k in keys],
    }, schema=SCHEMA)


def _replacement() -> pa.Table:
    """Keys 100-103, all on the second day: version 2 overwrites that day with them."""
    return _rows(range(100, 104)).set_column(2, "day", pa.array([DAYS[1]] * 4, pa.date32()))


def _sorted(table: pa.Table) -> list:
    return sorted(table.to_pylist(), key=lambda r: r["k"])


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    """Version 0: keys 0-11; version 1: + keys 12-20; version 2: day 2026-01-02 replaced by 100-103."""
    path = tmp_path_factory.mktemp("delta") / "t"
    write_deltalake(str(path), _rows(range(12)), partition_by=PARTITIONS)
    write_deltalake(str(path), _rows(range(12, 21)), mode="append")
    write_deltalake(str(path), _replacement(), mode="overwrite", predicate="day = '2026-01-02'")
    return path


def _expected(version: int) -> list:
    rows = _rows(range(12 if version == 0 else 21)).to_pylist()
    if version == 2:
        rows = [r for r in rows if r["day"] != DAYS[1]] + _replacement().to_pylist()
    return sorted(rows, key=lambda r: r["k"])


def test_the_fixture_has_quoted_partition_folders_and_three_versions(table):
    assert DeltaTable(str(table)).version() == 2
    folders = {p.name for p in table.iterdir() if p.name.startswith("city=")}
    assert folders == {"city=a%20b%2Fc%3Dd%25e", "city=plain", "city=__HIVE_DEFAULT_PARTITION__"}


@pytest.mark.parametrize("version", [0, 1, 2, None])
def test_read_snapshot_returns_exactly_the_versions_rows_with_the_tables_types(table, version):
    got = read_snapshot(str(table), version=version)
    assert got.schema.equals(SCHEMA)
    assert _sorted(got) == _expected(2 if version is None else version)


def test_read_snapshot_selects_columns_in_the_order_asked(table):
    got = read_snapshot(str(table), columns=["day", "k", "city"])
    assert got.column_names == ["day", "k", "city"]
    assert sorted(zip(got["k"].to_pylist(), got["city"].to_pylist(), got["day"].to_pylist())) == \
        sorted((r["k"], r["city"], r["day"]) for r in _expected(2))


def test_read_snapshot_takes_a_relative_path(table, monkeypatch):
    monkeypatch.chdir(table.parent)
    assert _sorted(read_snapshot(table.name, version=1)) == _expected(1)


def test_snapshot_dataset_filters_on_partition_values_including_null(table):
    dataset = snapshot_dataset(str(table))
    assert dataset.schema.equals(SCHEMA)
    assert dataset.count_rows() == len(_expected(2))
    odd = dataset.to_table(filter=ds.field("city") == ODD, columns=["k", "city"])
    assert sorted(odd["k"].to_pylist()) == [r["k"] for r in _expected(2) if r["city"] == ODD]
    assert set(odd["city"].to_pylist()) == {ODD}
    no_day = dataset.to_table(filter=ds.field("day").is_null(), columns=["k"])
    assert sorted(no_day["k"].to_pylist()) == [r["k"] for r in _expected(2) if r["day"] is None]
    old = snapshot_dataset(str(table), version=0).to_table(filter=ds.field("day") == DAYS[1])
    assert _sorted(old) == [r for r in _expected(0) if r["day"] == DAYS[1]]


def test_a_table_without_files_reads_as_an_empty_table_of_its_schema(tmp_path):
    DeltaTable.create(str(tmp_path / "e"), SCHEMA, partition_by=PARTITIONS)
    got = read_snapshot(str(tmp_path / "e"))
    assert got.num_rows == 0 and got.schema.equals(SCHEMA)


def test_column_mapping_is_refused_not_misread(tmp_path):
    write_deltalake(str(tmp_path / "cm"), _rows(range(3)), configuration={
        "delta.columnMapping.mode": "name", "delta.minReaderVersion": "2",
        "delta.minWriterVersion": "5"})
    with pytest.raises(DeltaProtocolError, match="column mapping"):
        read_snapshot(str(tmp_path / "cm"))


def test_a_table_allowing_deletion_vectors_without_any_is_read(tmp_path):
    write_deltalake(str(tmp_path / "dv"), _rows(range(3)),
                    configuration={"delta.enableDeletionVectors": "true"})
    assert "deletionVectors" in DeltaTable(str(tmp_path / "dv")).protocol().reader_features
    assert _sorted(read_snapshot(str(tmp_path / "dv"))) == _rows(range(3)).to_pylist()


ENGINES = [
    pytest.param("delta-rs", marks=pytest.mark.skipif(not delta_rs_engine_usable(),
                                                      reason="pyarrow < 16: string_view results")),
    "duckdb",
    "auto",
]


@pytest.mark.parametrize("engine", ENGINES)
def test_query_answers_a_known_aggregate_with_plain_types(table, engine):
    if engine != "delta-rs":
        pytest.importorskip("duckdb")
    got = query("""SELECT city, "window", sum(k) AS total, count(*) AS n, max(ts) AS last
                   FROM t WHERE day IS NOT NULL GROUP BY city, "window" """,
                {"t": str(table)}, engine=engine)
    expected = {}
    for r in _expected(2):
        if r["day"] is not None:
            total, n, last = expected.get((r["city"], r["window"]), (0, 0, r["ts"]))
            expected[(r["city"], r["window"])] = (total + r["k"], n + 1, max(last, r["ts"]))
    rows = {(None if isinstance(c, float) else c, w): (t, n, last.to_pydatetime())
            for c, w, t, n, last in got.itertuples(index=False)}
    assert rows == expected
    assert str(got["total"].dtype) == "int64" and str(got["n"].dtype) == "int64"
    assert str(got["last"].dt.tz) == "UTC"


@pytest.mark.parametrize("engine", ["duckdb", "auto"])
def test_query_joins_two_tables_by_alias(table, engine):
    pytest.importorskip("duckdb")
    got = query("SELECT count(*) AS n FROM a JOIN b ON a.k = b.k", {"a": str(table), "b": str(table)},
                engine=engine)
    assert got["n"].tolist() == [len(_expected(2))]


@pytest.fixture
def tokyo_local_time(monkeypatch):
    """The process' local zone is Asia/Tokyo for the test (DuckDB's default session zone)."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_duckdb_results_are_in_utc_whatever_the_local_zone(table, tokyo_local_time):
    pytest.importorskip("duckdb")
    got = query("SELECT max(ts) AS last FROM t", {"t": str(table)}, engine="duckdb")
    assert str(got["last"].dt.tz) == "UTC"
    assert got["last"].iloc[0].to_pydatetime() == max(r["ts"] for r in _expected(2))


def test_query_rejects_an_unknown_engine(table):
    with pytest.raises(ValueError, match="spark"):
        query("SELECT 1", {"t": str(table)}, engine="spark")


def test_plain_types_turn_engine_types_into_the_tables_types():
    assert plain_type(pa.decimal128(38, 0)) == pa.int64()
    assert plain_type(pa.decimal128(10, 2)) == pa.decimal128(10, 2)
    assert plain_type(pa.large_list(pa.int32())) == pa.large_list(pa.int32())
    table = pa.table({"n": pa.array([3], pa.decimal128(38, 0)), "s": ["x"]})
    cast = plain_types(table)
    assert cast.schema.equals(pa.schema([("n", pa.int64()), ("s", pa.string())]))
    assert cast.to_pylist() == [{"n": 3, "s": "x"}]
    if not hasattr(pa, "string_view"):
        return
    nested = pa.schema([
        ("s", pa.string_view()), ("l", pa.list_(pa.string_view())),
        ("st", pa.struct([("a", pa.string_view()), ("b", pa.int64())])),
        ("m", pa.map_(pa.string_view(), pa.list_(pa.string_view()))),
    ])
    assert plain_types(nested).equals(pa.schema([
        ("s", pa.string()), ("l", pa.list_(pa.string())),
        ("st", pa.struct([("a", pa.string()), ("b", pa.int64())])),
        ("m", pa.map_(pa.string(), pa.list_(pa.string()))),
    ]))
    views = pa.table({"s": pa.array(["x", None], pa.string_view())})
    assert plain_types(views).schema.field("s").type == pa.string()
    assert plain_types(views).to_pylist() == [{"s": "x"}, {"s": None}]
