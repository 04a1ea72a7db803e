"""The two Delta engines side by side in the one shared session (it carries the Delta jars):
identical tables from the same writes, each engine reads and extends the other's tables, and
``interest optimize`` compacts, Z-orders and vacuums on both."""

import datetime as dt
import os
import subprocess
import sys

import pytest
import yaml

from interest_lib.cli import main
from interest_lib.conf import load_config
from interest_lib.storage import Tables
from interest_lib.storage.maintenance import optimize_tables
from tests.helpers import read_with_delta_rs

pytestmark = [pytest.mark.spark, pytest.mark.card_env]

SCHEMA = "k long, v string, d date, ts timestamp"
ENGINES = ("delta-rs", "delta-spark")


def _rows(spark, rows):
    return spark.createDataFrame(
        [(k, v, dt.date(2026, 1, day), dt.datetime(2026, 1, day, 12, k % 60)) for k, v, day in rows],
        SCHEMA)


def _tables(spark, root, engine):
    conf = load_config(overrides=[f"storage.warehouse={root}", f"storage.engine={engine}"])
    return Tables(spark, conf.storage)


def _history(spark, tables, name):
    """The same sequence of commits on either engine: create, append, replace a partition, MERGE
    with a delete."""
    tables.write(_rows(spark, [(1, "a", 1), (2, "b", 2)]), name, partition_by=["d"])
    tables.write(_rows(spark, [(3, "c", 2), (4, "d", 3)]), name, partition_by=["d"])
    tables.write(_rows(spark, [(5, "e", 1)]), name, mode="overwrite-partitions", partition_by=["d"])
    source = _rows(spark, [(2, "B", 2), (4, "x", 3), (6, "f", 4)]).selectExpr("*", "k = 4 AS gone")
    tables.merge(source, name, keys=["k"], delete_flag="gone", partition_by=["d"])


def _content(tables, name):
    return sorted(tuple(r) for r in tables.read(name).collect())


def _partition_dirs(tables, name):
    return sorted({os.path.dirname(f) for f in tables.live_files(name)})


def test_both_engines_write_identical_tables_and_read_each_others(spark, tmp_path):
    from deltalake import DeltaTable

    by_engine = {e: _tables(spark, tmp_path / e, e) for e in ENGINES}
    for tables in by_engine.values():
        _history(spark, tables, "t.same")
    rs, ds = by_engine["delta-rs"], by_engine["delta-spark"]
    # k=1 went with its partition (replaced by k=5), k=4 was deleted by the MERGE, k=2 updated
    expected = [(2, "B", 2), (3, "c", 2), (5, "e", 1), (6, "f", 4)]  # (k, v, day)
    for tables in (rs, ds):
        assert [(k, v, d.day) for k, v, d, _ts in _content(tables, "t.same")] == sorted(expected)
        assert tables.version("t.same") == 3
        ops = [h["metadata"].get("interest.operation") for h in tables.history("t.same")]
        assert ops == ["merge", "overwrite-partitions", "append", "append"]
    assert _content(rs, "t.same") == _content(ds, "t.same")
    assert rs.read("t.same").schema.simpleString() == ds.read("t.same").schema.simpleString()
    assert _partition_dirs(rs, "t.same") == _partition_dirs(ds, "t.same") == [
        "d=2026-01-01", "d=2026-01-02", "d=2026-01-04"]
    for engine in ENGINES:  # the log as delta-rs (the BI reader) sees it
        table = DeltaTable(str(tmp_path / engine / "t" / "same"))
        assert table.metadata().partition_columns == ["d"]
        assert (table.protocol().min_reader_version, table.protocol().min_writer_version) == (1, 2)
        assert sorted(read_with_delta_rs(table.table_uri).column("k").to_pylist()) == [2, 3, 5, 6]

    # Each engine reads, time-travels and extends the other's table.
    for writer, other in ((rs, ds), (ds, rs)):
        path_owner, name = other, "t.same"  # the table other wrote, opened through writer's engine
        cross = Tables(spark, path_owner.conf, engine=writer.engine)
        assert _content(cross, name) == _content(path_owner, name)
        assert sorted(r.k for r in cross.read(name, version=0).collect()) == [1, 2]
        before = cross.version(name)
        cross.write(_rows(spark, [(10 + before, "x", 5)]), name, partition_by=["d"])
        cross.merge(_rows(spark, [(2, "A", 2)]), name, keys=["k"], partition_by=["d"])
        assert (2, "A") in {(r.k, r.v) for r in path_owner.read(name).collect()}
        assert path_owner.version(name) == before + 2
    assert _content(rs, "t.same") == _content(ds, "t.same")  # the same writes, crossed


def _many_small_files(spark, tables, name):
    for i in range(4):  # four appends over two date partitions: >= 8 small files
        tables.write(_rows(spark, [(10 * i + j, f"v{j}", 1 + j % 2) for j in range(6)]), name,
                     partition_by=["d"])


def _on_disk(tables, name):
    root = tables.path(name)
    return sorted(os.path.relpath(os.path.join(r, f), root)
                  for r, _d, fs in os.walk(root) if "_delta_log" not in r
                  for f in fs if f.endswith(".parquet"))


def test_optimize_compacts_zorders_and_vacuums_with_the_retention(spark, engine, tables):
    name = "t.small"
    _many_small_files(spark, tables, name)
    rows, version, files = _content(tables, name), tables.version(name), tables.live_files(name)
    assert len(files) >= 8
    tables.conf.optimize_tables, tables.conf.zorder_by = name, {name: "k"}
    tables.conf.vacuum_retention_hours = 168.0

    report = optimize_tables(tables, tables.conf)
    entry, = report.tables
    assert (entry.files_before, entry.files_after) == (len(files), 2)  # one file per date
    assert entry.zorder_by == ["k"] and entry.files_vacuumed == 0  # the old files are younger than 168 h
    assert _content(tables, name) == rows
    optimize_version = next(h["version"] for h in tables.history(name) if h["operation"] == "OPTIMIZE")
    assert optimize_version == version + 1
    assert _content(Tables(tables.spark, tables.conf, tables.engine), name) == rows
    assert sorted(tuple(r) for r in tables.read(name, version=version).collect()) == rows  # time travel
    assert len(_on_disk(tables, name)) == len(files) + 2

    # Retention 0 from conf: the compacted-away files go, the latest version stays whole.
    conf_file = tmp_conf_file(tables, name, retention=0)
    assert main(["optimize", "--conf-file", str(conf_file), "--set",
                 f"storage.warehouse={tables.conf.warehouse}", "--set",
                 f"storage.engine={engine}"]) == 0
    assert _on_disk(tables, name) == sorted(tables.live_files(name))
    assert len(tables.live_files(name)) == 2 and _content(tables, name) == rows


def tmp_conf_file(tables, name, retention):
    """A --conf-file naming the table to optimize, its Z-order column and the retention."""
    path = os.path.join(os.path.dirname(tables.conf.warehouse), "optimize.yml")
    with open(path, "w") as fh:
        yaml.safe_dump({"storage": {"optimize_tables": name, "zorder_by": {name: "k"},
                                    "vacuum_retention_hours": retention}}, fh)
    return path


def test_unresolvable_delta_jars_are_a_clear_error_naming_coordinates_and_cache(tmp_path):
    script = (
        "from interest_lib.conf import load_config\n"
        "from interest_lib.spark import get_spark\n"
        "get_spark(load_config(overrides=['storage.engine=delta-spark', 'spark.master=local[1]',"
        f" 'storage.delta_package=io.delta:delta-spark_2.13:0.0.0-none', 'storage.ivy_cache={tmp_path}']))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode != 0
    assert "DeltaJarsError" in done.stderr
    assert "io.delta:delta-spark_2.13:0.0.0-none" in done.stderr and str(tmp_path) in done.stderr


def test_reading_a_table_of_many_files_lists_them_on_the_driver_without_a_spark_job(spark, tmp_path):
    """The delta-rs engine reads a table as its explicit list of live files; past Spark's default
    of 32 paths that listing was a Spark job of its own on every read (0.35-0.9 s each in the
    stream's micro-batches). get_spark raises the threshold (interest_lib.spark._DEFAULT_SQL_CONF)."""
    tables = _tables(spark, tmp_path, "delta-rs")
    tables.write(_rows(spark, [(k, "v", 1 + k % 28) for k in range(120)]).repartition(3), "t.many",
                 partition_by=["d"])
    files = tables.live_files("t.many")
    assert len(files) > 32
    sc = spark.sparkContext
    sc.setJobGroup("read-many", "read-many")
    try:
        df = tables.read("t.many")
    finally:
        sc.setJobGroup("after", "after")
    assert sc.statusTracker().getJobIdsForGroup("read-many") == []
    assert df.count() == 120
