"""Concurrent writers and stopped runs on real delta-rs tables: never a duplicate, never a loss.

Interleavings are forced, not slept for: a hook on the write path runs the other writer at the
exact moment the first has read its inputs but not committed yet.
"""

import datetime as dt
import os
import threading

import pytest
from pyspark.sql import functions as F

from interest_lib import schema as S
from interest_lib.ingest import run_ingest
from interest_lib.sessions import run_sessionize
from interest_lib.storage import ConcurrentWriteError, Tables, WriterLockTimeout
from interest_lib.storage.catalog import (
    BRONZE_EVENTS, BRONZE_QUARANTINE, REF_ITEMS, SILVER_EVENTS_SESSIONIZED, SILVER_SESSIONS,
)
from interest_lib.storage.delta_rs import DeltaRsEngine
from tests.jvm import write_conf_file
from tests.spark.test_ingest import GOOD, KEY, NOW, ev, write_raw
from tests.spark.test_sessionize import events, t

pytestmark = pytest.mark.spark

SCHEMA = "k long, v string, d date"


def _kv(spark, rows):
    return spark.createDataFrame([(k, v, dt.date(2026, 1, day)) for k, v, day in rows], SCHEMA)


def _on_disk_files_are_all_committed(tables, name):
    """Every Parquet file in the table folder belongs to some version (no orphan of a failed write)."""
    path = tables.path(name)
    committed = set()
    for version in range(tables.version(name) + 1):
        committed |= set(tables.engine.live_files(path, version))
    on_disk = {os.path.relpath(os.path.join(root, f), path)
               for root, _d, names in os.walk(path) for f in names if f.endswith(".parquet")}
    return on_disk <= committed and not os.path.exists(os.path.join(path, "_staging"))


def _run_other_writer_before_commit(monkeypatch, other):
    """The first staged write (whoever makes it) first lets ``other`` run to completion."""
    real = DeltaRsEngine._adds
    fired = []

    def hooked(self, *args, **kwargs):
        if not fired:
            fired.append(True)
            other()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DeltaRsEngine, "_adds", hooked)


@pytest.mark.parametrize("op", ["create", "overwrite", "overwrite-partitions", "merge"])
def test_two_writers_of_the_same_files_one_fails_no_duplicates(spark, tables, monkeypatch, op):
    """Writer A has read version V (and chosen the files to remove) when writer B commits; A
    must not commit on top (delta-rs alone lets both commit: duplicates)."""
    name = "t.kv"
    if op != "create":
        tables.write(_kv(spark, [(1, "a", 1), (2, "b", 2)]), name, partition_by=["d"])

    def write(rows):
        df = _kv(spark, rows)
        if op == "merge":
            return tables.merge(df, name, keys=["k"], partition_by=["d"])
        mode = "append" if op == "create" else op
        return tables.write(df, name, mode=mode, partition_by=["d"])

    _run_other_writer_before_commit(monkeypatch, lambda: write([(1, "B", 1), (3, "B", 3)]))
    with pytest.raises(ConcurrentWriteError, match=r"t\.kv: another writer committed"):
        write([(1, "A", 1), (4, "A", 4)])
    rows = sorted((r.k, r.v) for r in tables.read(name).collect())
    expected = {"create": [(1, "B"), (3, "B")], "overwrite": [(1, "B"), (3, "B")],
                "overwrite-partitions": [(1, "B"), (2, "b"), (3, "B")],
                "merge": [(1, "B"), (2, "b"), (3, "B")]}[op]
    assert rows == expected  # B's result exactly; nothing of A, no key twice
    assert _on_disk_files_are_all_committed(tables, name)
    if op != "create":  # (an append's rerun appends again, by definition)
        # A rerun computes from the new version and commits.
        write([(1, "A", 1), (4, "A", 4)])
        keys = [r.k for r in tables.read(name).collect()]
        assert len(keys) == len(set(keys)) and 4 in keys


def test_blind_appends_still_both_commit(spark, tables, monkeypatch):
    tables.write(_kv(spark, [(1, "a", 1)]), "t.log")
    _run_other_writer_before_commit(monkeypatch, lambda: tables.write(_kv(spark, [(2, "b", 1)]), "t.log"))
    tables.write(_kv(spark, [(3, "c", 1)]), "t.log")
    assert sorted(r.k for r in tables.read("t.log").collect()) == [1, 2, 3]


def test_stale_expected_version_is_refused_before_any_work(spark, tables):
    tables.write(_kv(spark, [(1, "a", 1)]), "t.kv")
    tables.write(_kv(spark, [(2, "b", 1)]), "t.kv")
    with pytest.raises(ConcurrentWriteError, match="now at version 1"):
        tables.write(_kv(spark, [(3, "c", 1)]), "t.kv", expected_version=0)
    assert tables.version("t.kv") == 1


# --- sessionize ---------------------------------------------------------------------------------

DAY1 = [("a1", "u", t(8), "c1", "view"), ("a2", "u", t(8, 20), "c1", "click"),
        ("b1", "v", t(9), "c2", "view"), ("b2", "v", t(11), "c2", "view")]
DAY2 = [("a3", "u", t(8, 40), "c1", "cart"), ("b3", "v", t(10, 45), "c2", "view"),
        ("c1", "w", t(7, day=1), "c3", "view")]


def _assert_silver_clean(tables, n_events):
    ev = tables.read(SILVER_EVENTS_SESSIONIZED)
    ss = tables.read(SILVER_SESSIONS)
    assert ev.count() == ev.select(S.EVENT_ID).distinct().count() == n_events
    assert ss.count() == ss.select(S.SESSION_ID).distinct().count()
    # every event's session exists, and the sessions hold exactly the events
    assert ev.join(ss, S.SESSION_ID, "left_anti").count() == 0
    assert ss.agg(F.sum("n_events")).first()[0] == n_events


def test_two_sessionize_runs_at_once_are_serialised(spark, tmp_conf, tables):
    """Two runs started together (two threads, two Tables): one waits for the other's locks."""
    tables.write(events(spark, DAY1, batch=0), BRONZE_EVENTS, partition_by=[S.EVENT_DATE])
    barrier = threading.Barrier(2)
    reports, errors = [], []

    def run():
        try:
            mine = Tables(spark, tmp_conf.storage)
            barrier.wait()
            reports.append(run_sessionize(spark, tmp_conf, mine))
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert sorted(r.mode for r in reports) == ["full", "up-to-date"]
    _assert_silver_clean(tables, len(DAY1))


def test_two_sessionize_processes_at_once_end_with_one_clean_result(spark, tmp_conf, tables):
    """The issue's case as a user meets it: two `interest sessionize` processes (two JVMs) on the
    same warehouse at once; both exit 0 (one waited for the other's locks), no duplicate ids."""
    import subprocess
    import sys

    tables.write(events(spark, DAY1, batch=0), BRONZE_EVENTS, partition_by=[S.EVENT_DATE])
    fast_jvm = write_conf_file(os.path.join(os.path.dirname(tmp_conf.storage.warehouse), "test-spark.yml"))
    cmd = [sys.executable, "-m", "interest_lib.cli", "sessionize", "--conf-file", fast_jvm,
           "--set", f"storage.warehouse={tmp_conf.storage.warehouse}",
           "--set", "spark.master=local[1]", "--set", "spark.shuffle_partitions=2"]
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _out, err in outs]
    modes = sorted(line for out, _err in outs for line in out.splitlines() if '"mode"' in line)
    assert len(modes) == 2 and any('"full"' in m for m in modes) and any('"up-to-date"' in m for m in modes)
    _assert_silver_clean(tables, len(DAY1))


def test_interleaved_incremental_sessionize_without_locks_fails_the_loser(
        spark, tmp_conf, tables, monkeypatch):
    """Locks off (e.g. a mount without flock): run A has read silver when run B commits; A's
    merge is refused, silver holds B's result only, and A's rerun is up to date."""
    tmp_conf.storage.writer_lock = False
    tables.write(events(spark, DAY1, batch=0), BRONZE_EVENTS, partition_by=[S.EVENT_DATE])
    run_sessionize(spark, tmp_conf, tables)
    tables.write(events(spark, DAY2, batch=1), BRONZE_EVENTS, partition_by=[S.EVENT_DATE])
    other = Tables(spark, tmp_conf.storage)
    outcome = []
    _run_other_writer_before_commit(
        monkeypatch, lambda: outcome.append(run_sessionize(spark, tmp_conf, other)))
    with pytest.raises(ConcurrentWriteError, match="silver.events_sessionized"):
        run_sessionize(spark, tmp_conf, tables)
    assert outcome[0].mode == "incremental" and outcome[0].new_events == 3
    _assert_silver_clean(tables, len(DAY1) + len(DAY2))
    assert run_sessionize(spark, tmp_conf, tables).mode == "up-to-date"


def test_lock_held_elsewhere_is_a_clear_cli_exit(spark, tmp_conf, tmp_path, capsys):
    from interest_lib.cli import main
    from interest_lib.storage.locks import writer_locks

    warehouse = tmp_conf.storage.warehouse
    release, held = threading.Event(), threading.Event()

    def holder():
        with writer_locks(warehouse, [SILVER_SESSIONS], "sessionize", timeout=1):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(5)
        with pytest.raises(SystemExit) as exc:
            main(["sessionize", "--set", f"storage.warehouse={warehouse}",
                  "--set", "storage.lock_timeout_seconds=0", "--set", "storage.engine=delta-rs"])
    finally:
        release.set()
        thread.join()
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert "interest sessionize: silver.sessions: another writer holds" in err


# --- ingest ---------------------------------------------------------------------------------------

def _ingest(spark, conf, tables, path, run_id):
    conf.ingest.pseudonym_key = KEY
    conf.run.run_id = run_id
    return run_ingest(spark, conf, tables, input_path=str(path), now=NOW)


def _before_bronze_commit(monkeypatch, action):
    """Run ``action`` once, when the first bronze.events write is about to start."""
    real = Tables.write
    fired = []

    def hooked(self, df, name, *args, **kwargs):
        if name == BRONZE_EVENTS and not fired:
            fired.append(True)
            action()
        return real(self, df, name, *args, **kwargs)

    monkeypatch.setattr(Tables, "write", hooked)


A_EVENTS = GOOD[:3] + [ev("a9", user="u7", ts="2026-01-06T09:00:00Z")]
B_EVENTS = GOOD[2:] + [ev("b9", user="u8", ts="2026-01-06T10:00:00Z")]  # e3 in both


def _all_events_reach_silver(tables, expected_ids):
    bronze = [r.event_id for r in tables.read(BRONZE_EVENTS).collect()]
    silver = [r.event_id for r in tables.read(SILVER_EVENTS_SESSIONIZED).collect()]
    assert sorted(bronze) == sorted(silver) == sorted(expected_ids)  # no loss, no duplicate


def test_slow_ingest_racing_another_ingest_and_sessionize_loses_nothing(
        spark, tmp_conf, tables, tmp_path, monkeypatch):
    """Issue 17 #2/#3 with the locks on: ingest A is between its read and its bronze commit when
    ingest B and a sessionize start. B waits (here: refused after 0.5 s), the sessionize runs;
    A commits batch 1, B's rerun batch 2, and every event reaches silver exactly once."""
    write_raw(tmp_path / "base", "a.json", [ev("z1", user="u9")])
    write_raw(tmp_path / "a", "a.json", A_EVENTS)
    write_raw(tmp_path / "b", "b.json", B_EVENTS)
    _ingest(spark, tmp_conf, tables, tmp_path / "base", "base")
    run_sessionize(spark, tmp_conf, tables)
    errors = []

    def meanwhile():
        def ingest_b():
            try:
                conf_b = _copy_conf(tmp_conf, lock_timeout_seconds=0.5)
                _ingest(spark, conf_b, Tables(spark, conf_b.storage), tmp_path / "b", "b")
            except Exception as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)
        th = threading.Thread(target=ingest_b)
        th.start()
        th.join()
        assert run_sessionize(spark, tmp_conf, Tables(spark, tmp_conf.storage)).mode == "up-to-date"

    _before_bronze_commit(monkeypatch, meanwhile)
    a = _ingest(spark, tmp_conf, tables, tmp_path / "a", "a")
    monkeypatch.undo()
    assert len(errors) == 1 and isinstance(errors[0], WriterLockTimeout)
    assert "bronze.events" in str(errors[0]) and "ingest pid" in str(errors[0])
    b = _ingest(spark, tmp_conf, tables, tmp_path / "b", "b")
    assert (a.ingest_batch, b.ingest_batch) == (1, 2)
    assert b.duplicates_removed == 1  # e3, already stored by A
    assert run_sessionize(spark, tmp_conf, tables).new_events == a.accepted + b.accepted == 7
    _all_events_reach_silver(tables, ["z1", "e1", "e2", "e3", "a9", "e9", "e10", "b9"])


def test_batch_number_is_never_reused_even_without_locks(spark, tmp_conf, tables, tmp_path, monkeypatch):
    """The issue's exact interleaving with the locks off: while A is between reading bronze
    (version 0 -> batch 1) and committing, B ingests (batch 1) and a sessionize takes it. A's
    commit is refused instead of reusing batch 1 (which the sessionize would never pick up) or
    duplicating e3; A's rerun gets batch 2 and everything reaches silver once."""
    tmp_conf.storage.writer_lock = False
    write_raw(tmp_path / "base", "a.json", [ev("z1", user="u9")])
    write_raw(tmp_path / "a", "a.json", A_EVENTS)
    write_raw(tmp_path / "b", "b.json", B_EVENTS)
    _ingest(spark, tmp_conf, tables, tmp_path / "base", "base")
    run_sessionize(spark, tmp_conf, tables)

    def meanwhile():
        other = Tables(spark, tmp_conf.storage)
        assert _ingest(spark, _copy_conf(tmp_conf), other, tmp_path / "b", "b").ingest_batch == 1
        assert run_sessionize(spark, tmp_conf, other).new_events == len(B_EVENTS)

    _before_bronze_commit(monkeypatch, meanwhile)
    with pytest.raises(ConcurrentWriteError, match="bronze.events"):
        _ingest(spark, tmp_conf, tables, tmp_path / "a", "a")
    monkeypatch.undo()
    a = _ingest(spark, tmp_conf, tables, tmp_path / "a", "a")
    assert a.ingest_batch == 2 and a.duplicates_removed == 1 and a.accepted == 3
    assert tables.read(BRONZE_QUARANTINE).count() == 0
    assert run_sessionize(spark, tmp_conf, tables).new_events == 3
    _all_events_reach_silver(tables, ["z1", "e1", "e2", "e3", "a9", "e9", "e10", "b9"])


def _copy_conf(conf, **storage):
    import copy

    out = copy.deepcopy(conf)
    for key, value in storage.items():
        setattr(out.storage, key, value)
    return out


def test_run_killed_between_bronze_and_ref_items_is_completed_by_the_rerun(
        spark, tmp_conf, tables, tmp_path, monkeypatch):
    """Issue 17 #4: the bronze.events commit exists, ref.items' does not; the rerun used to say
    'nothing to do' and ref.items stayed empty for good."""
    write_raw(tmp_path / "raw" / "events", "a.json", GOOD)
    write_raw(tmp_path / "raw" / "items", "items.json", [
        '{"item_id": "i1", "title": "Trail shoe", "category_id": "c1", "category_path": "a/b/c1"}',
        '{"item_id": "i2", "title": "Stroller", "category_id": "c2", "category_path": "a/c/c2"}',
        '{"item_id": "", "title": "nameless", "category_id": "c1", "category_path": "a/b/c1"}',
    ])
    real_merge = Tables.merge

    def killed_before_items(self, source, name, *args, **kwargs):
        if name == REF_ITEMS:
            raise RuntimeError("driver killed")
        return real_merge(self, source, name, *args, **kwargs)

    monkeypatch.setattr(Tables, "merge", killed_before_items)
    with pytest.raises(RuntimeError, match="driver killed"):
        _ingest(spark, tmp_conf, tables, tmp_path / "raw" / "events", "r1")
    monkeypatch.undo()
    assert tables.read(BRONZE_EVENTS).count() == len(GOOD) and not tables.exists(REF_ITEMS)

    again = _ingest(spark, tmp_conf, tables, tmp_path / "raw" / "events", "r1")
    assert not again.skipped and again.ingest_batch == 0
    assert (again.items_accepted, again.items_quarantined) == (2, 0)  # quarantine row kept once
    assert sorted(r.item_id for r in tables.read(REF_ITEMS).collect()) == ["i1", "i2"]
    assert tables.read(BRONZE_QUARANTINE).filter("record_type = 'item'").count() == 1
    assert tables.read(BRONZE_EVENTS).count() == len(GOOD)  # events not written twice
    third = _ingest(spark, tmp_conf, tables, tmp_path / "raw" / "events", "r1")
    assert third.skipped and tables.read(REF_ITEMS).count() == 2
