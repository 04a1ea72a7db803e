"""The table API writes genuine Delta tables: atomic, idempotent, time-travelable, validated, on
both engines (``engine``: delta-rs and delta-spark in the one shared session with the Delta jars),
and delta-rs (the BI reader) reads what either engine wrote."""

import datetime as dt
import os

import pytest
from pyspark.sql import functions as F

from interest_lib.storage import SchemaMismatchError, TableError, Tables, Txn
from tests.helpers import read_with_delta_rs

pytestmark = [pytest.mark.spark, pytest.mark.card_env]

SCHEMA = "k long, v string, d date, ts timestamp"


def _rows(spark, rows):
    return spark.createDataFrame(rows, SCHEMA)


def _row(k, v, day):
    return (k, v, dt.date(2026, 1, day), dt.datetime(2026, 1, day, 12))


def test_engine_is_the_one_conf_names(spark, tmp_conf, engine):
    assert Tables(spark, tmp_conf.storage).engine.name == engine
    tmp_conf.storage.engine = "auto"  # the session has the Delta jars: auto picks the data source
    assert Tables(spark, tmp_conf.storage).engine.name == "delta-spark"


def test_append_is_real_delta_readable_by_delta_rs(spark, engine, tables):
    result = tables.write(_rows(spark, [_row(1, "a", 1), _row(2, "b", 2)]), "t.events",
                          partition_by=["d"])
    path = tables.path("t.events")
    assert result.version == 0 and result.rows_written == 2
    assert os.path.isdir(os.path.join(path, "_delta_log"))
    data = read_with_delta_rs(path).to_pydict()
    assert sorted(data["k"]) == [1, 2]
    assert sorted(data["d"]) == [dt.date(2026, 1, 1), dt.date(2026, 1, 2)]
    assert not os.path.exists(os.path.join(path, "_staging"))


def test_time_travel_reads_an_older_version(spark, engine, tables):
    tables.write(_rows(spark, [_row(1, "a", 1)]), "t.tt")
    tables.write(_rows(spark, [_row(2, "b", 1)]), "t.tt")
    tables.write(_rows(spark, [_row(3, "c", 1)]), "t.tt", mode="overwrite")
    assert [r.k for r in tables.read("t.tt").collect()] == [3]
    assert sorted(r.k for r in tables.read("t.tt", version=1).collect()) == [1, 2]
    assert sorted(read_with_delta_rs(tables.path("t.tt"), version=0).column("k").to_pylist()) == [1]
    ops = [h["metadata"].get("interest.operation") for h in tables.history("t.tt")]
    assert ops == ["overwrite", "append", "append"]


def test_failed_write_leaves_previous_version_intact(spark, engine, tables):
    tables.write(_rows(spark, [_row(1, "a", 1), _row(2, "b", 1)]), "t.fail")
    before = tables.version("t.fail")

    @F.udf("string")
    def explode_on_two(v):
        if v == "y":
            raise ValueError("boom in the middle of a write")
        return v

    bad = _rows(spark, [_row(10, "x", 1), _row(11, "y", 1)]).withColumn("v", explode_on_two("v"))
    with pytest.raises(Exception):
        tables.write(bad, "t.fail")
    assert tables.version("t.fail") == before
    assert sorted(read_with_delta_rs(tables.path("t.fail")).column("k").to_pylist()) == [1, 2]
    # No stray data file is read; delta-rs leaves none, the Delta data source leaves the files of
    # the failed job's finished tasks uncommitted until a vacuum deletes them.
    def on_disk():
        return sorted(os.path.relpath(os.path.join(r, f), tables.path("t.fail"))
                      for r, _d, fs in os.walk(tables.path("t.fail")) for f in fs if f.endswith(".parquet"))
    if engine == "delta-spark":
        assert len(on_disk()) > len(tables.live_files("t.fail"))
        tables.vacuum("t.fail", 0)
    assert on_disk() == sorted(tables.live_files("t.fail"))


def test_rerun_with_same_txn_never_duplicates(spark, engine, tables):
    df = _rows(spark, [_row(1, "a", 1)])
    first = tables.write(df, "t.idem", txn=Txn("ingest:run-1"))
    again = tables.write(df, "t.idem", txn=Txn("ingest:run-1"))
    other = tables.write(df, "t.idem", txn=Txn("ingest:run-2"))
    assert not first.skipped and again.skipped and not other.skipped
    assert tables.read("t.idem").count() == 2
    assert tables.txn_version("t.idem", "ingest:run-1") == 1
    assert tables.txn_version("t.idem", "never-wrote") is None
    assert tables.committed_version("t.idem", "ingest:run-1") == first.version == 0
    assert again.version == 0 and other.version == 1  # the skipped write left the table at 0


def test_rerun_of_a_merge_with_the_same_txn_is_skipped(spark, engine, tables):
    tables.write(_rows(spark, [_row(1, "a", 1)]), "t.midem")
    source = _rows(spark, [_row(1, "A", 1), _row(2, "b", 1)])
    first = tables.merge(source, "t.midem", keys=["k"], txn=Txn("sessionize:b1"))
    again = tables.merge(source, "t.midem", keys=["k"], txn=Txn("sessionize:b1"))
    assert not first.skipped and again.skipped and again.version == first.version == 1
    assert tables.txn_version("t.midem", "sessionize:b1") == 1
    assert sorted((r.k, r.v) for r in tables.read("t.midem").collect()) == [(1, "A"), (2, "b")]
    assert [h["metadata"].get("interest.operation") for h in tables.history("t.midem")] == ["merge", "append"]


def test_overwrite_partitions_replaces_only_written_partitions(spark, engine, tables):
    tables.write(_rows(spark, [_row(1, "a", 1), _row(2, "b", 2)]), "t.part", partition_by=["d"])
    tables.write(_rows(spark, [_row(3, "c", 1)]), "t.part", mode="overwrite-partitions",
                 partition_by=["d"])
    assert sorted((r.k, r.d.day) for r in tables.read("t.part").collect()) == [(2, 2), (3, 1)]


def test_merge_updates_inserts_and_deletes_by_key(spark, engine, tables):
    tables.write(_rows(spark, [_row(1, "a", 1), _row(2, "b", 2), _row(3, "c", 3)]), "t.m",
                 partition_by=["d"])
    source = spark.createDataFrame(
        [(2, "B", dt.date(2026, 1, 2), dt.datetime(2026, 1, 2, 12), False),
         (3, None, dt.date(2026, 1, 3), dt.datetime(2026, 1, 3, 12), True),
         (4, "d", dt.date(2026, 1, 4), dt.datetime(2026, 1, 4, 12), False)],
        SCHEMA + ", gone boolean",
    )
    result = tables.merge(source, "t.m", keys=["k"], delete_flag="gone", partition_by=["d"])
    assert sorted((r.k, r.v) for r in tables.read("t.m").collect()) == [(1, "a"), (2, "B"), (4, "d")]
    # Copy-on-write touched only the files holding keys 2 and 3, not the one holding key 1.
    assert result.files_removed == 2
    assert sorted(read_with_delta_rs(tables.path("t.m")).column("k").to_pylist()) == [1, 2, 4]


def test_merge_keyed_by_the_partition_reads_only_the_sources_partitions(spark, engine, tables, tmp_path):
    tables.write(_rows(spark, [_row(1, "a", 1), _row(2, "b", 2), _row(3, "c", 3)]), "t.mp",
                 partition_by=["d"])
    # Hide day 1's file: a MERGE that opened it would fail; one pruned to days 2-4 never does.
    day1 = os.path.join(tables.path("t.mp"), "d=2026-01-01")
    hidden = tmp_path / "hidden-day-1"
    os.rename(day1, hidden)
    source = spark.createDataFrame(
        [(2, "B", dt.date(2026, 1, 2), dt.datetime(2026, 1, 2, 12), False),
         (3, None, dt.date(2026, 1, 3), dt.datetime(2026, 1, 3, 12), True),
         (4, "d", dt.date(2026, 1, 4), dt.datetime(2026, 1, 4, 12), False)],
        SCHEMA + ", gone boolean",
    )
    try:
        result = tables.merge(source, "t.mp", keys=["k", "d"], delete_flag="gone", partition_by=["d"])
    finally:
        os.rename(hidden, day1)
    assert result.files_removed == 2
    assert sorted((r.k, r.v) for r in tables.read("t.mp").collect()) == [(1, "a"), (2, "B"), (4, "d")]


def test_merge_partitions_are_the_sources_when_the_keys_hold_the_partition_columns(spark):
    from interest_lib.storage.engine import MAX_PRUNED_PARTITIONS, merge_partitions, partition_predicate

    target = spark.createDataFrame([(1, "x", 1), (2, "y", 1), (3, None, 2), (4, "x", 2)], "k long, p string, q int")
    source = spark.createDataFrame([(9, "x", 1), (9, None, 2)], "k long, p string, q int")
    one = merge_partitions(source, ["k", "p"], ["p"])
    assert sorted(one, key=str) == sorted([{"p": None}, {"p": "x"}], key=str)
    assert sorted(r.k for r in target.filter(partition_predicate(one)).collect()) == [1, 3, 4]
    two = merge_partitions(source, ["k", "p", "q"], ["p", "q"])
    assert sorted(r.k for r in target.filter(partition_predicate(two)).collect()) == [1, 3]
    assert merge_partitions(source, ["k"], ["p"]) is None  # p not a key: a match may lie anywhere
    assert merge_partitions(source, ["k", "p"], []) is None
    assert target.filter(partition_predicate(merge_partitions(source.limit(0), ["k", "p"], ["p"]))).count() == 0
    many = spark.range(MAX_PRUNED_PARTITIONS + 1).selectExpr("id as k", "cast(id as string) as p")
    assert merge_partitions(many, ["k", "p"], ["p"]) is None


def test_schema_mismatch_is_a_clear_error(spark, engine, tables):
    tables.write(_rows(spark, [_row(1, "a", 1)]), "t.s")
    wrong = spark.createDataFrame([(1, 2)], "k long, v long")
    with pytest.raises(SchemaMismatchError, match=r"t\.s: .*missing \['d', 'ts'\].*type changed \['v'\]"):
        tables.write(wrong, "t.s")
    assert tables.version("t.s") == 0


def test_read_missing_table_and_bad_mode_are_clear(spark, engine, tables):
    with pytest.raises(TableError, match="no Delta table"):
        tables.read("t.nothing")
    with pytest.raises(ValueError, match="write mode"):
        tables.write(_rows(spark, [_row(1, "a", 1)]), "t.x", mode="upsert")


def test_empty_table_reads_as_empty_dataframe_with_schema(spark, engine, tables):
    tables.write(spark.createDataFrame([], SCHEMA), "t.empty")
    df = tables.read("t.empty")
    assert df.count() == 0 and df.columns == ["k", "v", "d", "ts"]


def test_delta_spark_engine_requested_without_jars_is_clear(spark, tmp_conf, monkeypatch):
    # The shared session has the jars; this checks only the message a session without them gets.
    monkeypatch.setattr("interest_lib.spark.delta_jars_available", lambda _spark: False)
    tmp_conf.storage.engine = "delta-spark"
    with pytest.raises(TableError, match="Delta jars are not on the classpath"):
        Tables(spark, tmp_conf.storage)


def test_staging_left_by_a_killed_writer_is_removed_by_the_next_write(spark, tables):
    import signal
    import socket
    import subprocess

    tables.write(_rows(spark, [_row(1, "a", 1)]), "t.staged")
    victim = subprocess.Popen(["sleep", "60"])  # stands for a writer killed between stage and commit
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    root = os.path.join(tables.path("t.staged"), "_staging")
    host = socket.gethostname()
    dead = os.path.join(root, f"{host}_{victim.pid}-0123abcd")
    live = os.path.join(root, f"{host}_{os.getpid()}-4567cdef")  # a writer still running
    other = os.path.join(root, f"otherhost_{victim.pid}-89ab")  # another machine's writer
    for folder in (dead, live, other):
        os.makedirs(folder)
        open(os.path.join(folder, "part-00000.parquet"), "wb").close()
    tables.write(_rows(spark, [_row(2, "b", 2)]), "t.staged")
    assert not os.path.exists(dead)
    assert os.path.isdir(live) and os.path.isdir(other)
    assert sorted(r.k for r in tables.read("t.staged").collect()) == [1, 2]


def _spark_jobs(spark) -> int:
    """Spark jobs this session has started so far (the status store keeps their ids)."""
    return max(spark.sparkContext.statusTracker().getJobIdsForGroup(None) or [-1]) + 1


def test_delta_spark_reads_versions_and_write_results_from_the_log_without_a_spark_job(spark, tmp_conf):
    """The delta-spark engine's version and write results equal what ``DeltaTable.history``
    says, read from the snapshot and the commit file instead of a history query (a Spark job,
    ~150 ms CPU a call)."""
    from delta.tables import DeltaTable

    tmp_conf.storage.engine = "delta-spark"
    tables = Tables(spark, tmp_conf.storage)
    results = [
        tables.write(_rows(spark, [_row(1, "a", 1), _row(2, "b", 2)]), "t.log", partition_by=["d"]),
        tables.write(_rows(spark, [_row(3, "c", 2)]), "t.log", mode="overwrite-partitions", partition_by=["d"]),
        tables.merge(_rows(spark, [_row(1, "A", 1), _row(4, "d", 3)]), "t.log", keys=["k"], partition_by=["d"]),
    ]
    path, engine = tables.path("t.log"), tables.engine
    history = DeltaTable.forPath(spark, path).history().orderBy("version").collect()
    assert [r.version for r in results] == [h["version"] for h in history] == [0, 1, 2]
    assert [r.rows_written for r in results] == [2, 1, None]  # MERGE's count is not the table's
    assert [(r.files_added, r.files_removed) for r in results] == [
        (int(m.get("numFiles", m.get("numTargetFilesAdded", 0))),
         int(m.get("numRemovedFiles", m.get("numTargetFilesRemoved", 0))))
        for m in (h["operationMetrics"] for h in history)]
    jobs = _spark_jobs(spark)
    assert engine.version(path) == 2 and engine._latest_commit(path)[0] == 2
    assert _spark_jobs(spark) == jobs
