"""``interest stream`` with real Spark Structured Streaming (file source, availableNow trigger) and
real Delta tables, on hand-built landing files whose fate is known row by row."""

from __future__ import annotations

import copy
import json
import os
import shutil
import time

import pytest
from pyspark.sql import functions as F

from interest_lib import schema as S
from interest_lib.pseudonymise import pseudonymise_py, resolve_key
from interest_lib.storage.catalog import (
    BRONZE_EVENTS, BRONZE_QUARANTINE, GOLD_MIGRATION_ALERTS, GOLD_STREAM_PROGRESS, SILVER_EVENTS_SESSIONIZED,
    SILVER_SESSIONS, SILVER_USER_INTEREST_WINDOWS,
)
from interest_lib.streaming.job import SMALL_BATCH_SQL, checkpoint_path, run_stream

pytestmark = [pytest.mark.spark, pytest.mark.timeout(1800)]  # several micro-batches each; minutes under load


def ev(eid, user, cat, ts, etype="view", **kw):
    rec = {"event_id": eid, "user_id": user, "item_id": f"i-{cat}", "category_id": cat,
           "category_path": f"root/{cat}", "event_type": etype, "event_time": ts, "source": "app"}
    rec.update(kw)
    return json.dumps(rec)


# Three landing files, taken one per micro-batch in landing order. Expected fate of every record:
FILES = {
    "a.jsonl": [
        *[ev(f"e{i}", "u1", "A", f"2026-03-03T10:00:0{i}Z") for i in range(1, 5)],  # week 1: u1 on A
        ev("e5", "u2", "C", "2026-03-03T11:00:00Z", etype="click"),
        ev("e5", "u2", "C", "2026-03-03T11:00:00Z", etype="click"),  # duplicate inside the batch
        ev("bad1", "", "C", "2026-03-03T11:00:00Z"),                 # missing_user_id
        ev("bad2", "u2", "C", "yesterday"),                          # malformed_event_time
        "this is not json",                                          # malformed_record
    ],
    "b.jsonl": [
        *[ev(f"e{i}", "u1", "B", f"2026-03-10T10:00:0{i - 5}Z") for i in range(6, 10)],  # week 2: u1 moves to B
        ev("e5", "u2", "C", "2026-03-03T11:00:00Z", etype="click"),  # duplicate of a stored event
        ev("late1", "u2", "C", "2026-03-01T00:00:00Z"),  # before 03-03T11:00 - 1 day: late_event
    ],
    "c.jsonl": [
        ev("e10", "u3", "A", "2026-03-10T12:00:00Z", etype="purchase", price="1e400"),  # non_finite_price
        ev("e11", "u3", "A", "2026-03-10T12:01:00Z", etype="purchase", price="3.5"),
        ev("late2", "u3", "A", "2026-03-08T00:00:00Z"),  # before 03-10T10:00:03 - 1 day: late_event
    ],
}
ACCEPTED = {f"e{i}" for i in range(1, 10)} | {"e11"}
REASONS = {"missing_user_id": 1, "malformed_event_time": 1, "malformed_record": 1, "late_event": 2,
           "non_finite_price": 1}


def land(folder, files=FILES, start=None):
    """Write the files with increasing modification times (the file source's order)."""
    os.makedirs(folder, exist_ok=True)
    start = start or time.time() - 100
    for i, (name, lines) in enumerate(files.items()):
        path = os.path.join(folder, name)
        with open(path, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        os.utime(path, (start + 10 * i, start + 10 * i))


@pytest.fixture
def stream_conf(tmp_conf, tmp_path):
    tmp_conf.stream.landing = str(tmp_path / "landing")
    tmp_conf.stream.max_files_per_trigger = 1
    tmp_conf.stream.watermark_minutes = 1440
    tmp_conf.stream.score = False
    return tmp_conf


def test_file_stream_validates_dedupes_quarantines_and_alerts_exactly(spark, stream_conf, tables):
    land(stream_conf.stream.landing)
    report = run_stream(spark, stream_conf, tables, trigger="available_now")

    assert report.batches == 3 and report.replayed == 0
    assert (report.rows_in, report.accepted, report.quarantined, report.duplicates_removed) == (18, 10, 6, 2)
    assert report.reasons == REASONS
    bronze = tables.read(BRONZE_EVENTS)
    assert sorted(r[0] for r in bronze.select(S.EVENT_ID).collect()) == sorted(ACCEPTED)
    # one ingest batch per micro-batch, each the bronze version that committed it
    assert sorted(r[0] for r in bronze.select(S.INGEST_BATCH).distinct().collect()) == [0, 1, 2]
    key = resolve_key(stream_conf, "local[2]")
    assert {r[0] for r in bronze.select(S.USER_ID).distinct().collect()} == {
        pseudonymise_py(u, key) for u in ("u1", "u2", "u3")}
    q = tables.read(BRONZE_QUARANTINE)
    assert {r[S.REASON]: r["count"] for r in q.groupBy(S.REASON).count().collect()} == REASONS
    late = {json.loads(r[0])["event_id"] for r in q.filter(F.col(S.REASON) == "late_event").select(S.RAW_RECORD).collect()}
    assert late == {"late1", "late2"}
    assert all("u2" not in r[0] and "u3" not in r[0] for r in q.select(S.RAW_RECORD).collect())  # pseudonymised

    # downstream: sessions, current-window profiles, and the migration visible on the partial window
    assert tables.read(SILVER_EVENTS_SESSIONIZED).count() == 10
    assert tables.read(SILVER_SESSIONS).agg(F.sum(S.N_EVENTS)).first()[0] == 10
    windows = {(r[S.USER_ID], r["window"]): r for r in tables.read(SILVER_USER_INTEREST_WINDOWS).collect()}
    u1 = pseudonymise_py("u1", key)
    u1_windows = sorted(w for (u, w) in windows if u == u1)
    assert len(u1_windows) == 2 and list(windows[(u1, u1_windows[1])]["window_categories"]) == ["B"]
    assert list(windows[(u1, u1_windows[1])]["profile_categories"]) == ["B", "A"]  # decayed: B 4, A 4 x 0.5
    alerts = tables.read(GOLD_MIGRATION_ALERTS).collect()
    assert [(a[S.USER_ID], a["window"], a["from_category"], a["to_category"], a["window_events"], a["stream_batch"])
            for a in alerts] == [(u1, u1_windows[1], "A", "B", 4, 1)]
    assert alerts[0]["magnitude"] == pytest.approx(1.0) and alerts[0]["divergence"] == pytest.approx(1.0)

    # each micro-batch's progress persisted: one row per batch with its input rows (the file's
    # lines) and accepted events; latency from landing (files landed 100, 90, 80 s before the run)
    progress = {r["batch_id"]: r for r in tables.read(GOLD_STREAM_PROGRESS).collect()}
    assert sorted(progress) == [0, 1, 2]
    assert [(progress[b]["input_rows"], progress[b]["accepted"]) for b in (0, 1, 2)] == [(9, 5), (6, 4), (3, 1)]
    assert [progress[b]["latency_s"] >= s for b, s in ((0, 100), (1, 90), (2, 80))] == [True] * 3
    assert all(progress[b]["batch_seconds"] > 0 for b in (0, 1, 2))
    assert {r["query"] for r in progress.values()} == {stream_conf.stream.query_name}

    # a restart with nothing new: no micro-batch, nothing appended
    versions = {t: tables.version(t) for t in (BRONZE_EVENTS, BRONZE_QUARANTINE, GOLD_MIGRATION_ALERTS)}
    again = run_stream(spark, stream_conf, tables, trigger="available_now")
    assert again.batches == 0
    assert {t: tables.version(t) for t in versions} == versions

    # Spark replays the last micro-batch when its commit is missing (a crash after the Delta
    # commits): the app transactions make the replay append nothing.
    commits = os.path.join(checkpoint_path(stream_conf), "commits")
    for name in ("2", ".2.crc"):
        os.remove(os.path.join(commits, name))
    replay = run_stream(spark, stream_conf, tables, trigger="available_now")
    assert (replay.batches, replay.replayed) == (1, 1)
    assert tables.read(BRONZE_EVENTS).count() == 10
    assert tables.read(BRONZE_QUARANTINE).count() == 6
    assert tables.read(GOLD_MIGRATION_ALERTS).count() == 1


def test_stream_batches_equal_batch_ingest_of_the_same_files(spark, stream_conf, tables, tmp_path):
    """Without late data, bronze written by the stream holds exactly what batch ingest writes,
    the daily cap included: a bot's day split over two micro-batches keeps its earliest events."""
    from interest_lib.ingest import run_ingest
    from interest_lib.storage import Tables

    files = {k: [l for l in v if "late" not in l] for k, v in FILES.items()}
    files["b.jsonl"].append(ev("bad3", "", "C", "2026-03-10T11:00:00Z"))  # a bad row in a and in b
    # 6 events of a bot on one day, 3 in each micro-batch, 4 allowed (u1's 4 events a day are
    # at the cap, not over it): the second micro-batch may keep 1, counting the 3 stored. It
    # also re-sends the first 3 (at-least-once delivery): copies the cap must not count.
    files["b.jsonl"] += [ev(f"bot{i}", "bot", "D", f"2026-03-10T13:00:0{i}Z") for i in range(1, 4)]
    files["c.jsonl"] += [ev(f"bot{i}", "bot", "D", f"2026-03-10T13:00:0{i}Z") for i in range(1, 7)]
    stream_conf.ingest.max_events_per_user_day = 4
    land(stream_conf.stream.landing, files)
    stream_conf.stream.max_files_per_trigger = 2  # a micro-batch of a and b: two input splits
    aqe = spark.conf.get("spark.sql.adaptive.enabled")
    during, reports = [], []
    run_stream(spark, stream_conf, tables, trigger="available_now",
               on_batch=lambda r: (during.append({k: spark.conf.get(k) for k in SMALL_BATCH_SQL}), reports.append(r)))
    # the second micro-batch (c.jsonl): 3 re-sent copies removed, bot4 kept, bot5 and bot6 over
    assert (reports[-1].duplicates_removed, reports[-1].reasons.get("user_day_over_cap")) == (3, 2)
    # stream.small_batch_sql: the micro-batches ran without code generation and adaptive
    # execution, and the session has its own settings back afterwards.
    assert during and all(settings == SMALL_BATCH_SQL for settings in during)
    assert aqe == "true" and spark.conf.get("spark.sql.adaptive.enabled") == aqe
    batch_conf = copy.deepcopy(stream_conf)
    batch_conf.storage.warehouse = str(tmp_path / "batch-warehouse")
    batch_tables = Tables(spark, batch_conf.storage)
    run_ingest(spark, batch_conf, batch_tables, input_path=stream_conf.stream.landing)
    cols = [c for c in tables.read(BRONZE_EVENTS).columns if c not in (S.INGEST_BATCH, S.INGESTED_AT)]
    streamed = sorted(tuple(r) for r in tables.read(BRONZE_EVENTS).select(*cols).collect())
    batched = sorted(tuple(r) for r in batch_tables.read(BRONZE_EVENTS).select(*cols).collect())
    assert streamed == batched and len(streamed) == 14
    for t in (tables, batch_tables):
        over = [json.loads(r[0])["event_id"] for r in t.read(BRONZE_QUARANTINE)
                .filter(F.col(S.REASON) == "user_day_over_cap").select(S.RAW_RECORD).collect()]
        assert sorted(over) == ["bot5", "bot6"]
    # each micro-batch's quarantined rows are one file (ingest.quarantine_rows_per_file), not one per split
    live = [len(tables.live_files(BRONZE_QUARANTINE, v)) for v in range(tables.version(BRONZE_QUARANTINE) + 1)]
    assert [n - before for before, n in zip([0, *live], live) if n > before] == [1, 1]  # files each commit added


def test_a_lost_checkpoint_is_refused_not_taken_for_replays(spark, stream_conf, tables):
    """Batch ids of a new checkpoint restart at 0: the query's app transactions in bronze.events
    would make every append look like a replay, so the run stops naming the fix."""
    from interest_lib.errors import InputError

    land(stream_conf.stream.landing, {"a.jsonl": FILES["a.jsonl"]})
    run_stream(spark, stream_conf, tables, trigger="available_now")
    shutil.rmtree(checkpoint_path(stream_conf))
    with pytest.raises(InputError, match="stream.query_name"):
        run_stream(spark, stream_conf, tables, trigger="available_now")
