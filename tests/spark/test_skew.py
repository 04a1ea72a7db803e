"""Skewed data: a bot over the per-user daily cap is quarantined with a counted reason (the
earliest events of its day kept, nothing lost), the ingest report names it (pseudonymised) and a
viral item; the generator's bot and viral item go through ingest and sessionize."""

import json
from itertools import product

import pytest
from pyspark.sql import functions as F

from interest_lib import schema as S
from interest_lib.generate import run_generate
from interest_lib.generate.events import get_context
from interest_lib.generate.skew import BOT_USER, viral_item
from interest_lib.ingest.caps import OVER_CAP
from interest_lib.ingest.pseudonymise import pseudonymise_py
from interest_lib.sessions import run_sessionize
from interest_lib.storage.catalog import BRONZE_EVENTS, BRONZE_QUARANTINE, SILVER_EVENTS_SESSIONIZED
from tests.spark.test_ingest import KEY, ev, ingest, write_raw

pytestmark = pytest.mark.spark


def test_a_bot_over_the_daily_cap_is_quarantined_with_its_reason_and_reported(spark, tmp_conf, tables, tmp_path):
    bot_day1 = [ev(f"b{k:02d}", user="bot", item="viral", ts=f"2026-01-05T10:{59 - k:02d}:00Z") for k in range(12)]
    bot_day2 = [ev(f"c{k}", user="bot", item="viral", ts=f"2026-01-06T0{k}:00:00Z") for k in range(3)]
    bot_bad = [ev("bad", user="bot", ts="2026-01-05T09:00:00Z", price=-1)]  # invalid: not counted by the cap
    people = [ev("p1", user="u1", item="i1"), ev("p2", user="u2", item="i2", ts="2026-01-05T10:30:00Z"),
              ev("p3", user="u3", item="i3")]
    raw = tmp_path / "raw" / "events"
    write_raw(raw / "arrival_date=2026-01-05", "a.json", bot_day1 + bot_bad + people + [people[0]])
    write_raw(raw / "arrival_date=2026-01-06", "b.json", bot_day2)
    tmp_conf.ingest.max_events_per_user_day = 5
    tmp_conf.ingest.heavy_item_share = 0.5
    report = ingest(spark, tmp_conf, tables)

    # Nothing vanishes: 20 records = 3 + 5 + 3 accepted, 7 over the cap + 1 bad, 1 duplicate.
    assert (report.rows_in, report.accepted, report.quarantined, report.duplicates_removed) == (20, 11, 8, 1)
    assert report.reasons == {OVER_CAP: 7, "negative_price": 1}
    # The earliest five of the bot's day are kept (event times 10:48 .. 10:52 are b11 .. b07).
    kept = {r.event_id for r in tables.read(BRONZE_EVENTS).collect()}
    assert kept == {"p1", "p2", "p3", "c0", "c1", "c2"} | {f"b{k:02d}" for k in range(7, 12)}
    over = [json.loads(r.raw_record)["event_id"] for r in
            tables.read(BRONZE_QUARANTINE).filter(F.col(S.REASON) == OVER_CAP).collect()]
    assert sorted(over) == [f"b{k:02d}" for k in range(7)]
    # The report names the bot as bronze.events does (pseudonymised) and the viral item.
    assert report.heavy_users == [{S.USER_ID: pseudonymise_py("bot", KEY.encode()), "days_over_cap": 1,
                                   "events_on_those_days": 12, "quarantined": 7}]
    # (items are counted over the events kept: valid, after the cap, not duplicates: 5 + 3 of the bot)
    assert [(i[S.ITEM_ID], i["events"]) for i in report.heavy_items] == [("viral", 8)]
    assert any("heavy user" in line and "7 quarantined" in line for line in report.skew_lines())

    # A later run with more of 2026-01-06 (hourly files): the bot's 3 stored events count, so
    # the cap allows 2 of its 4 new ones (the earliest); u1's 1 + 2 events stay under it.
    more = tmp_path / "raw2" / "events" / "arrival_date=2026-01-07"
    write_raw(more, "c.json", [ev(f"d{k}", user="bot", ts=f"2026-01-06T1{3 - k}:00:00Z") for k in range(4)]
              + [ev(f"q{k}", user="u1", ts=f"2026-01-05T1{k}:00:00Z") for k in range(2)])
    second = ingest(spark, tmp_conf, tables, path=more.parent)
    assert (second.rows_in, second.accepted, second.quarantined, second.reasons) == (6, 4, 2, {OVER_CAP: 2})
    over = {json.loads(r.raw_record)["event_id"] for r in
            tables.read(BRONZE_QUARANTINE).filter(F.col(S.REASON) == OVER_CAP).collect()}
    assert over == {f"b{k:02d}" for k in range(7)} | {"d0", "d1"}  # d3, d2 are the day's earliest new ones
    assert second.heavy_users == [{S.USER_ID: pseudonymise_py("bot", KEY.encode()), "days_over_cap": 1,
                                   "events_on_those_days": 4, "quarantined": 2}]


def test_re_sent_copies_do_not_use_up_the_cap_and_an_over_cap_event_stays_out_through_its_copy(
        spark, tmp_conf, tables, tmp_path):
    """At-least-once delivery: a day's file sent again with one new event, and a file copied
    twice in one input. The cap counts each event once (the copy dedupe keeps), so the new event
    gets in; when the kept copy is over the cap, its other copies are duplicates, not accepted."""
    tmp_conf.ingest.max_events_per_user_day = 5
    tmp_conf.ingest.heavy_item_share = 0.5
    day = [ev(f"a{k}", user="u1", item="resent", ts=f"2026-01-05T10:0{k}:00Z") for k in range(4)]
    write_raw(tmp_path / "r1" / "events", "a.json", day)
    first = ingest(spark, tmp_conf, tables, path=tmp_path / "r1" / "events")
    assert (first.accepted, first.quarantined) == (4, 0)

    # the same four again (stored), the new a4 of the same day: 5 distinct events, at the cap
    write_raw(tmp_path / "r2" / "events", "a-resent.json", day + [ev("a4", user="u1", ts="2026-01-05T10:30:00Z")])
    second = ingest(spark, tmp_conf, tables, path=tmp_path / "r2" / "events")
    assert (second.rows_in, second.accepted, second.quarantined, second.duplicates_removed) == (5, 1, 0, 4)
    assert second.reasons == {} and second.heavy_users == []
    # the heavy-item report counts what ingest keeps: the re-sent copies don't make their item heavy
    assert [(i[S.ITEM_ID], i["events"], i["share"]) for i in second.heavy_items] == [("i1", 1, 1.0)]

    # one input holding a file twice: u2's 7 distinct events of a day, each in x.json and y.json;
    # the cap keeps the earliest 5 (from x.json, the copy dedupe keeps), quarantines 2, and the
    # y.json copies of all 7 are duplicates (none of the 2 over the cap gets in through y.json)
    bot = [ev(f"b{k}", user="u2", ts=f"2026-01-06T08:0{k}:00Z") for k in range(7)]
    write_raw(tmp_path / "r3" / "events", "x.json", bot)
    write_raw(tmp_path / "r3" / "events", "y.json", bot)
    third = ingest(spark, tmp_conf, tables, path=tmp_path / "r3" / "events")
    assert (third.rows_in, third.accepted, third.quarantined, third.duplicates_removed) == (14, 5, 2, 7)
    over = sorted((json.loads(r.raw_record)["event_id"], r[S.SOURCE_FILE].rsplit("/", 1)[-1]) for r in
                  tables.read(BRONZE_QUARANTINE).filter(F.col(S.REASON) == OVER_CAP).collect())
    assert over == [("b5", "x.json"), ("b6", "x.json")]
    stored = {r.event_id for r in tables.read(BRONZE_EVENTS).filter(F.col(S.EVENT_DATE) == "2026-01-06").collect()}
    assert stored == {f"b{k}" for k in range(5)}
    assert third.heavy_users[0]["events_on_those_days"] == 7 and third.heavy_users[0]["quarantined"] == 2


def test_the_cap_quarantines_exactly_the_events_after_the_cap_th_earliest_of_each_user_day(spark):
    """Against a sort in Python: events crowded into a few minutes (the cut falls inside a minute,
    between events of one second told apart by event id and file, and on a minute's edge),
    padded user ids, invalid rows of a heavy user (not counted), light users untouched."""
    import datetime as dt
    import random

    from interest_lib.ingest.caps import cap_user_days

    rng = random.Random(7)
    rows, seen = [], set()
    for user in ["bot", " bot", "u1", "u2"]:
        for day in (5, 6):
            for _ in range(rng.randint(2, 40)):
                ts = dt.datetime(2026, 1, day, 23 if user == "u2" else 10, rng.randint(0, 3), rng.choice([0, 0, 30, 59]))
                key = (ts, f"e{rng.randint(0, 9)}", rng.choice(["a.json", "b.json"]))
                if (user.strip(),) + key not in seen:
                    seen.add((user.strip(),) + key)
                    rows.append((user, ts, *key[1:], rng.choice([None, None, None, None, "bad_price"])))
    # one minute's edge: exactly `cap` events in the first minute of u9's day, then more
    rows += [("u9", dt.datetime(2026, 1, 7, 8, 0, s), f"x{s}", "c.json", None) for s in range(4)]
    rows += [("u9", dt.datetime(2026, 1, 7, 8, 1, s), f"y{s}", "c.json", None) for s in range(3)]
    checked = spark.createDataFrame(rows, f"{S.USER_ID} string, _ts timestamp, {S.EVENT_ID} string, "
                                          f"{S.SOURCE_FILE} string, {S.REASON} string")
    # events already stored (bronze.events, pseudonymised) for three user-days: the cap allows
    # only the rest of them (none where the stored events reach it)
    key = b"test-key"
    before = {("bot", dt.date(2026, 1, 5)): 3, ("u1", dt.date(2026, 1, 6)): 10, ("u9", dt.date(2026, 1, 7)): 2}
    stored = spark.createDataFrame([(pseudonymise_py(u, key), d, n) for (u, d), n in before.items()],
                                   f"{S.USER_ID} string, {S.EVENT_DATE} date, events long")
    for cap, with_stored in product((1, 4, 7), (False, True)):
        expected = {}
        by_day = {}
        for user, ts, eid, file, reason in rows:
            expected[(user, ts, eid, file)] = reason
            if reason is None:
                by_day.setdefault((user.strip(), ts.date()), []).append((ts, eid, file, user))
        for day, events in by_day.items():
            allow = max(cap - before.get(day, 0), 0) if with_stored else cap
            for ts, eid, file, user in sorted(events)[allow:]:
                expected[(user, ts, eid, file)] = OVER_CAP
        capped = (cap_user_days(checked, cap, stored=stored, key=key) if with_stored
                  else cap_user_days(checked, cap))
        got = {(r[S.USER_ID], r["_ts"], r[S.EVENT_ID], r[S.SOURCE_FILE]): r[S.REASON] for r in capped.collect()}
        assert got == expected, (cap, with_stored)
        assert sum(v == OVER_CAP for v in got.values()) > 0


def test_without_a_user_day_over_the_cap_the_records_pass_unchanged_and_unjoined(spark):
    """The usual batch: nobody over the cap. The frame comes back as it is (same rows, no cap
    join, window or union planned for the later reads), and a heavy user-day still gets the cap."""
    import datetime as dt

    from interest_lib.ingest.caps import cap_user_days

    rows = [("u1", dt.datetime(2026, 1, 5, 10, k), f"e{k}", "a.json", None) for k in range(3)]
    rows.append(("u1", dt.datetime(2026, 1, 5, 11), "bad", "a.json", "negative_price"))
    checked = spark.createDataFrame(rows, f"{S.USER_ID} string, _ts timestamp, {S.EVENT_ID} string, "
                                          f"{S.SOURCE_FILE} string, {S.REASON} string")
    assert cap_user_days(checked, 3) is checked
    capped = cap_user_days(checked, 2)
    assert capped is not checked
    assert sorted((r[S.EVENT_ID], r[S.REASON]) for r in capped.collect()) == [
        ("bad", "negative_price"), ("e0", None), ("e1", None), ("e2", OVER_CAP)]


def test_the_cap_off_keeps_every_valid_event(spark, tmp_conf, tables, tmp_path):
    raw = tmp_path / "raw" / "events"
    write_raw(raw / "arrival_date=2026-01-05", "a.json",
              [ev(f"b{k:02d}", user="bot", ts=f"2026-01-05T10:{k:02d}:00Z") for k in range(12)])
    tmp_conf.ingest.max_events_per_user_day = 0
    report = ingest(spark, tmp_conf, tables)
    assert (report.accepted, report.quarantined, report.heavy_users) == (12, 0, [])


def test_generated_bot_and_viral_item_go_through_ingest_and_sessionize(spark, tmp_conf, tables):
    g = tmp_conf.generate
    g.users, g.mean_events_per_user, g.days, g.bot_events, g.viral_item_share = 40, 30, 14, 3000, 0.2
    g.partitions = 2
    tmp_conf.ingest.max_events_per_user_day = 100
    stats = run_generate(spark, tmp_conf, tables)
    report = ingest(spark, tmp_conf, tables)
    assert report.rows_in == stats["events_written"]
    assert report.rows_in == report.accepted + report.quarantined + report.duplicates_removed
    # The bot: 3000 events over 14 days (~214 a day), at most 100 a day kept, the rest counted.
    bot = report.heavy_users[0]
    assert bot[S.USER_ID] == pseudonymise_py(BOT_USER, KEY.encode())
    assert bot["days_over_cap"] == 14 and report.reasons[OVER_CAP] == bot["quarantined"]
    assert bot["events_on_those_days"] - bot["quarantined"] == 14 * 100
    # The viral item holds about a fifth of the valid events, and the report shows it.
    ctx = get_context(g.seed, g.items_per_category, g.start_date, g.days)
    viral = ctx.cat.item_ids[viral_item(ctx)[0]]
    assert report.heavy_items[0][S.ITEM_ID] == viral and 0.17 < report.heavy_items[0]["share"] < 0.23
    run_sessionize(spark, tmp_conf, tables)
    sessionized = tables.read(SILVER_EVENTS_SESSIONIZED)
    assert sessionized.count() == report.accepted
    assert sessionized.filter(F.col(S.USER_ID) == bot[S.USER_ID]).count() == 14 * 100


def test_stage_timer_labels_the_spark_jobs_of_its_step(spark):
    """StageTimer sets the Spark job description of the jobs run inside a step (the UI and
    bench/bench_scale.py name a slow stage by it) and restores the previous one after."""
    import logging

    from interest_lib.logs import StageTimer

    sc = spark.sparkContext
    sc.setJobDescription("outer")
    try:
        timer = StageTimer(logging.getLogger("interest_lib.ingest.job"))
        with timer.stage("read+validate"):
            assert sc.getLocalProperty("spark.job.description") == "ingest.job: read+validate"
            with timer.stage("inner"):
                assert sc.getLocalProperty("spark.job.description") == "ingest.job: inner"
            assert sc.getLocalProperty("spark.job.description") == "ingest.job: read+validate"
        assert sc.getLocalProperty("spark.job.description") == "outer"
    finally:
        sc.setLocalProperty("spark.job.description", None)
