"""Sessions on hand-built events whose sessions are known; incremental runs equal a full run."""

import datetime as dt

import pytest

from interest_lib import schema as S
from interest_lib.sessions import assign_sessions, run_sessionize, session_features
from interest_lib.storage.catalog import BRONZE_EVENTS, SILVER_EVENTS_SESSIONIZED, SILVER_SESSIONS

pytestmark = pytest.mark.spark

DAY = dt.datetime(2026, 1, 5)


def t(hours, minutes=0, day=0):
    return DAY + dt.timedelta(days=day, hours=hours, minutes=minutes)


def events(spark, rows, batch=0):
    """rows: (event_id, user, time, category, type) -> DataFrame in bronze.events' schema."""
    data = [
        (eid, user, "i1", cat, "a/" + cat, etype, ts, ts.date(), None, None, "web", batch, DAY)
        for eid, user, ts, cat, etype in rows
    ]
    return spark.createDataFrame(data, S.EVENT_SCHEMA)


def sessions_of(df):
    """{event_id: session_start} from a sessionized frame."""
    return {r.event_id: r.session_start for r in df.select(S.EVENT_ID, S.SESSION_START).collect()}


def test_gap_and_max_length_rules(spark):
    rows = [("a1", "a", t(10), "c1", "view"), ("a2", "a", t(10, 10), "c2", "cart"),
            ("a3", "a", t(10, 50), "c1", "view"), ("a4", "a", t(11), "c1", "purchase")]
    # b: an event every 20 minutes for 6 hours: the 240-minute cap cuts it at 04:20.
    rows += [(f"b{i:02d}", "b", t(0, 20 * i), "c3", "view") for i in range(19)]
    out = assign_sessions(events(spark, rows), gap_minutes=30, max_session_minutes=240)
    starts = sessions_of(out)
    assert starts["a1"] == starts["a2"] == t(10)
    assert starts["a3"] == starts["a4"] == t(10, 50)  # 40-minute gap opened a session
    assert {starts[f"b{i:02d}"] for i in range(13)} == {t(0)}  # 04:00 is exactly 240 min: kept
    assert {starts[f"b{i:02d}"] for i in range(13, 19)} == {t(4, 20)}

    feats = {r.session_start: r for r in session_features(out).collect() if r.user_id == "a"}
    first, second = feats[t(10)], feats[t(10, 50)]
    assert (first.n_events, first.n_view, first.n_cart, first.duration_s) == (2, 1, 1, 600)
    assert first.categories_visited == ["c1", "c2"] and first.dominant_category == "c1"
    assert second.has_purchase and not first.has_purchase
    assert first.session_id != second.session_id and len(first.session_id) == 32


def reference_session_starts(rows, gap_minutes, max_minutes):
    """The session rule written the plain way: {event_id: session_start}."""
    out, by_user = {}, {}
    for eid, user, ts, _cat, _etype in rows:
        by_user.setdefault(user, []).append((ts, eid))
    gap, cap = dt.timedelta(minutes=gap_minutes), dt.timedelta(minutes=max_minutes)
    for evs in by_user.values():
        start = prev = None
        for ts, eid in sorted(evs):
            if prev is None or ts - prev > gap or ts - start > cap:
                start = ts
            out[eid], prev = start, ts
    return out


def test_matches_the_plain_rule_on_random_streams(spark):
    """Random streams with long gap-sessions (several cuts each, two per user, equal times)
    and short ones: the window-function version equals the plain loop event by event."""
    import random

    rng = random.Random(11)
    rows = []
    for u in range(12):
        ts = t(0, day=u % 3)
        for i in range(rng.randint(5, 120)):
            # Mostly 0-25 minute steps (long gap-sessions, cut every 60 minutes here), some
            # equal timestamps, and now and then a gap that closes the session.
            step = rng.choice([0, 5, 10, 20, 25, 25, 25, 45, 90]) if rng.random() < 0.9 else 600
            ts += dt.timedelta(minutes=step, seconds=rng.randint(0, 3) * 15)
            rows.append((f"u{u}-{i:03d}", f"user{u}", ts, "c1", "view"))
    got = sessions_of(assign_sessions(events(spark, rows), gap_minutes=30, max_session_minutes=60))
    want = reference_session_starts(rows, 30, 60)
    assert got == want
    assert len(set(want.values())) > 40  # the data really has many sessions and cuts


def test_same_timestamp_ties_are_deterministic(spark):
    rows = [("x2", "u", t(9), "c1", "view"), ("x1", "u", t(9), "c2", "view")]
    a = assign_sessions(events(spark, rows), 30, 240).collect()
    b = assign_sessions(events(spark, list(reversed(rows))), 30, 240).collect()
    assert {r.session_id for r in a} == {r.session_id for r in b}


def _silver(tables):
    ev = {r.event_id: r.session_id for r in tables.read(SILVER_EVENTS_SESSIONIZED).collect()}
    ss = sorted((r.user_id, r.session_start, r.n_events) for r in tables.read(SILVER_SESSIONS).collect())
    return ev, ss


def test_incremental_runs_merge_midnight_sessions_and_late_arrivals(spark, tmp_conf, tables):
    day1 = [("m1", "u", t(23, 40), "c1", "view"), ("m2", "u", t(23, 50), "c1", "click"),
            ("n1", "v", t(8), "c2", "view"), ("n2", "v", t(9), "c2", "view")]
    # Next day: u continues the session across midnight; a late event of v (08:30 of day 1)
    # bridges v's two sessions into one; w is new.
    day2 = [("m3", "u", t(0, 10, day=1), "c1", "cart"), ("n3", "v", t(8, 30), "c2", "view"),
            ("w1", "w", t(7, day=1), "c3", "view")]
    tables.write(events(spark, day1, batch=0), BRONZE_EVENTS, partition_by=[S.EVENT_DATE])
    first = run_sessionize(spark, tmp_conf, tables)
    assert first.mode == "full" and first.sessions_written == 3
    tables.write(events(spark, day2, batch=1), BRONZE_EVENTS, partition_by=[S.EVENT_DATE])
    second = run_sessionize(spark, tmp_conf, tables)
    assert second.mode == "incremental" and second.new_events == 3
    incremental = _silver(tables)

    ev, ss = incremental
    assert ev["m1"] == ev["m2"] == ev["m3"]  # one session spanning midnight
    assert ev["n1"] == ev["n2"] == ev["n3"]  # gaps of exactly 30 minutes do not split
    assert ss == [("u", t(23, 40), 3), ("v", t(8), 3), ("w", t(7, day=1), 1)]
    assert second.sessions_deleted == 1  # v's 09:00 session was absorbed
    # Merged: the three new events and n2 (re-assigned to the 08:00 session); m1, m2 and n1 were
    # recomputed with the same session and are not rewritten.
    assert second.events_written == 4

    third = run_sessionize(spark, tmp_conf, tables)
    assert third.mode == "up-to-date"

    run_sessionize(spark, tmp_conf, tables, full=True)
    assert _silver(tables) == incremental  # incremental result == recomputing everything


def test_late_event_that_bridges_two_sessions_replaces_them(spark, tmp_conf, tables):
    tables.write(events(spark, [("a", "u", t(8), "c1", "view"), ("b", "u", t(8, 50), "c1", "view")],
                        batch=0), BRONZE_EVENTS, partition_by=[S.EVENT_DATE])
    run_sessionize(spark, tmp_conf, tables)
    assert tables.read(SILVER_SESSIONS).count() == 2
    tables.write(events(spark, [("late", "u", t(8, 25), "c1", "view")], batch=1), BRONZE_EVENTS,
                 partition_by=[S.EVENT_DATE])
    report = run_sessionize(spark, tmp_conf, tables)
    sessions = tables.read(SILVER_SESSIONS).collect()
    assert [(s.session_start, s.n_events) for s in sessions] == [(t(8), 3)]
    assert report.sessions_deleted == 1
    assert len({r.session_id for r in tables.read(SILVER_EVENTS_SESSIONIZED).collect()}) == 1


def test_run_stopped_between_the_two_commits_is_repaired(spark, engine, tmp_conf, tables, monkeypatch):
    """Events committed, sessions not (the job died in between): the next run rebuilds the
    sessions from the stored events, and the result equals a full recompute."""
    from interest_lib.sessions.job import SESSIONS_TXN, sessions_out_of_step
    from interest_lib.storage import Tables

    tables.write(events(spark, [("a", "u", t(8), "c1", "view"), ("b", "u", t(8, 50), "c1", "view")],
                        batch=0), BRONZE_EVENTS, partition_by=[S.EVENT_DATE])
    run_sessionize(spark, tmp_conf, tables)
    assert tables.txn_version(SILVER_SESSIONS, SESSIONS_TXN) == tables.version(SILVER_EVENTS_SESSIONIZED)
    tables.write(events(spark, [("late", "u", t(8, 25), "c1", "view")], batch=1), BRONZE_EVENTS,
                 partition_by=[S.EVENT_DATE])

    real_merge = Tables.merge

    def dies_on_sessions(self, source, name, *args, **kwargs):
        if name == SILVER_SESSIONS:
            raise RuntimeError("executor lost")
        return real_merge(self, source, name, *args, **kwargs)

    monkeypatch.setattr(Tables, "merge", dies_on_sessions)
    with pytest.raises(RuntimeError, match="executor lost"):
        run_sessionize(spark, tmp_conf, tables)
    monkeypatch.setattr(Tables, "merge", real_merge)
    assert sessions_out_of_step(tables)  # the late event is in the events, not in the sessions
    assert tables.read(SILVER_SESSIONS).count() == 2

    report = run_sessionize(spark, tmp_conf, tables)
    assert report.mode == "up-to-date"  # the events already hold batch 1; sessions rebuilt
    assert report.sessions_rebuilt and "rebuilt from the stored events" in report.summary()
    assert not sessions_out_of_step(tables)
    assert not run_sessionize(spark, tmp_conf, tables).sessions_rebuilt
    repaired = _silver(tables)
    assert [(s[1], s[2]) for s in repaired[1]] == [(t(8), 3)]
    run_sessionize(spark, tmp_conf, tables, full=True)
    assert _silver(tables) == repaired
