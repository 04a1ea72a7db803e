"""Featurize on hand-built events whose profiles, migrations, stages and sequences are known."""

import dataclasses
import datetime as dt
import math

import pytest
from pyspark.sql import functions as F

from interest_lib import schema as S
from interest_lib.conf import load_config
from interest_lib.features.job import input_summary
from interest_lib.features.migrations import detect_migrations, evaluate_detection, migration_flows
from interest_lib.features.profiles import build_profiles, decay_horizon
from interest_lib.features.sequences import build_inputs_at, build_sequences, build_vocab, interval_bucket
from interest_lib.models import interval_bucket_of
from interest_lib.features.stages import interest_stages
from interest_lib.features.windows import assign_windows, window_index_of

pytestmark = [pytest.mark.spark]

MONDAY = dt.datetime(2026, 1, 5)  # window starts are Mondays


def at(week, day=0, hour=12, minute=0):
    return MONDAY + dt.timedelta(weeks=week, days=day, hours=hour, minutes=minute)


def events(spark, rows):
    """rows: (user, time, category, type[, item, text]) -> sessionized events."""
    data = []
    for i, r in enumerate(rows):
        user, ts, cat, etype = r[:4]
        item = r[4] if len(r) > 4 else f"i_{cat}"
        text = r[5] if len(r) > 5 else None
        data.append((f"e{i:05d}", user, None if etype == "search" else item, cat, f"fam/sub/{cat}", etype,
                     ts, ts.date(), text, None, "web", 0, MONDAY, f"s_{user}_{ts:%Y%m%d%H}"))
    return spark.createDataFrame(data, S.SESSIONIZED_EVENT_SCHEMA)


@pytest.fixture
def conf():
    return load_config(overrides=["features.decay=0.5", "migration.min_events=3",
                                  "migration.js_threshold=0.3", "migration.min_group_size=2"])


def by_window(df):
    return {r.window - window_index_of(MONDAY, 7): r for r in df.collect()}


def test_tumbling_and_sliding_windows(spark):
    ev = events(spark, [("u", at(0, day=6, hour=23), "c1", "view")])
    tumbling = assign_windows(ev, 7, 7).collect()
    assert [r.window_start for r in tumbling] == [MONDAY]
    sliding = assign_windows(ev, 7, 1).collect()
    assert len(sliding) == 7
    assert all(r.window_start <= at(0, day=6, hour=23) < r.window_end for r in sliding)


def test_profile_weights_decay_and_entropy(spark, conf):
    rows = [("u", at(0), "c1", "view"), ("u", at(0, 1), "c1", "view"), ("u", at(0, 2), "c2", "purchase"),
            ("u", at(1), "c3", "view"), ("u", at(1, 1), "c3", "view"), ("u", at(1, 2), "c3", "view"),
            ("u", at(1, 3), "c3", "view"),
            ("u", at(3), "c3", "view")]  # week 2 empty
    prof = by_window(build_profiles(events(spark, rows), conf.features))
    w0, w1, w3 = prof[0], prof[1], prof[3]
    # view = 1, purchase = 6: c1 2/8, c2 6/8
    assert w0.window_categories == ["c2", "c1"] and w0.window_shares == pytest.approx([0.75, 0.25])
    assert w0.n_events == 3 and w0.n_purchase == 1 and w0.windows_since_prev is None
    # decayed: c3 4 + c2 0.5*6 + c1 0.5*2 = 8
    assert w1.profile_categories == ["c3", "c2", "c1"]
    assert w1.profile_shares == pytest.approx([0.5, 0.375, 0.125])
    assert w1.entropy == pytest.approx(-sum(p * math.log2(p) for p in (0.5, 0.375, 0.125)))
    assert w3.windows_since_prev == 2  # the empty week is explicit
    # week 3: c3 1 + 0.25*4 + 0.125*... c2 0.125*6, c1 0.125*2 -> shares stay sparse and sum to 1
    assert sum(w3.profile_shares) == pytest.approx(1.0)
    assert decay_horizon(0.5) == 6


@pytest.mark.card_env
def test_migration_is_confirmed_and_burst_is_not(spark, conf):
    def week(user, w, cat, n=4):
        return [(user, at(w, d % 7, 10 + d), cat, "view") for d in range(n)]
    rows = week("mover", 0, "c1") + week("mover", 1, "c1") + week("mover", 2, "c2") + week("mover", 3, "c2")
    rows += week("burst", 0, "c1") + week("burst", 1, "c1") + week("burst", 2, "c9") + week("burst", 3, "c1")
    prof = build_profiles(events(spark, rows), conf.features)
    mig = detect_migrations(prof, conf.migration, conf.stages.active_share).collect()
    assert [(m.user_id, m.window - window_index_of(MONDAY, 7), m.from_category, m.to_category, m.kind)
            for m in mig] == [("mover", 2, "c1", "c2", "abrupt")]
    assert mig[0].confirmed_window == mig[0].window + 1
    assert mig[0].divergence == pytest.approx(1.0, abs=0.05)


@pytest.mark.card_env
def test_flows_hide_small_groups(spark, conf):
    rows = []
    for u in ("a", "b", "c"):
        rows += [(u, at(w, d, 10 + d), "c1" if w < 2 else "c2", "view") for w in range(4) for d in range(3)]
    rows += [("z", at(w, d, 10 + d), "c5" if w < 2 else "c6", "view") for w in range(4) for d in range(3)]
    prof = build_profiles(events(spark, rows), conf.features)
    migrations = detect_migrations(prof, conf.migration, 0.1)
    flows = migration_flows(migrations, min_group_size=2).collect()
    assert [(f.from_category, f.to_category, f.users) for f in flows] == [("c1", "c2", 3)]
    # Rolled up to families, z's c5 -> c6 joins the same cell; a move inside a family vanishes.
    paths = spark.createDataFrame([("c1", "sports/a/c1"), ("c2", "baby/b/c2"), ("c5", "sports/c/c5"),
                                   ("c6", "baby/d/c6")], "category_id string, category_path string")
    rolled = migration_flows(migrations, 2, paths, level=1).collect()
    assert [(f.from_category, f.to_category, f.users) for f in rolled] == [("sports", "baby", 4)]


def test_stages_follow_a_known_trajectory(spark, conf):
    # c1 for weeks 0-5 then nothing; c2 appears at week 3 and grows, then holds.
    rows = []
    for w in range(12):
        if w < 6:
            rows += [("u", at(w, d, 9 + d), "c1", "view") for d in range(4)]
        if w >= 3:
            rows += [("u", at(w, d, 15 + d), "c2", "view") for d in range(min(2 * (w - 2), 8))]
    prof = build_profiles(events(spark, rows), conf.features)
    stages = {(r.interest, r.window - window_index_of(MONDAY, 7)): r.stage
              for r in interest_stages(prof, conf.stages).collect()}
    assert stages[("c1", 0)] == "initial"
    assert stages[("c1", 2)] == "stable"  # share 1.0 three windows running
    assert stages[("c1", 4)] == "fading"  # losing share to c2 (about -0.13 per window)
    assert stages[("c1", 8)] == "fading"  # below the active share, active two windows ago
    assert ("c1", 11) not in stages  # no longer an interest at all
    assert stages[("c2", 3)] == "initial"
    assert stages[("c2", 5)] == "developing"
    assert stages[("c2", 11)] == "stable"  # share ~1.0, flat, active every window


def test_sequences_are_padded_labelled_and_split_by_time(spark, conf):
    rows = []
    for w in range(6):
        cat = "c1" if w < 4 else "c2"
        rows += [("u", at(w, d, 9 + d), cat, "view") for d in range(3)]
        rows += [("v", at(w, d, 9 + d), "c3", "cart") for d in range(2)]
    rows.append(("u", at(5, 6, 20), "c2", "search", None, "red shoes"))
    ev = events(spark, rows)
    conf.sequences.max_events, conf.sequences.max_windows = 4, 3
    prof = build_profiles(ev, conf.features)
    stages = interest_stages(prof, conf.stages)
    vocab = build_vocab(ev, 3)
    val_start, test_start = at(4, 0, 0), at(5, 0, 0)
    seqs = build_sequences(ev, prof, stages, vocab, conf, val_start, test_start).collect()
    idx = {(r.kind, r.key): r.idx for r in vocab.collect()}
    assert idx[("event_type", "view")] == 1 and idx[("category", "c1")] == 1
    for s in seqs:
        assert len(s.ev_category) == 4 and len(s.win_category) == 3 * conf.features.top_k
        assert len(s.win_share) == len(s.win_category)
    u = sorted((s for s in seqs if s.user_id == "u"), key=lambda s: s.cutoff)
    # Cut-off after week 3 (the last c1 week): next event is c2, not in week 3's categories.
    switch = [s for s in u if s.cutoff == at(4, 0, 0)][0]
    assert switch.next_category == idx[("category", "c2")] and switch.is_switch
    assert switch.ev_category == [idx[("category", "c1")]] * 4
    # Buckets: 1 first event, 2 <1 min, 3 <5 min, 4 <30 min, 5 <2 h, 6 <1 day, 7 <7 days, 8 longer.
    assert switch.ev_interval[-1] == 7  # consecutive events are 25 hours apart
    # No leakage: train labels end by the validation start; test labels start at the test start.
    for s in seqs:
        if s.split == "train":
            assert s.cutoff + dt.timedelta(days=7) <= val_start
        if s.split == "test":
            assert s.cutoff >= test_start - dt.timedelta(days=7)
    assert {s.split for s in seqs} == {"train", "validation", "test"}
    # build_inputs_at (the event-level protocol's inputs at any time) cut at a window boundary
    # gives the training sample's inputs there.
    cut = spark.createDataFrame([("u", at(4, 0, 0))], "user_id string, cutoff timestamp")
    (at_boundary,) = build_inputs_at(ev, prof, vocab, conf, cut).collect()
    for col in ("ev_category", "ev_item", "ev_type", "ev_interval", "ev_text", "win_category", "win_share"):
        assert getattr(at_boundary, col) == getattr(switch, col), col


def test_events_sharing_a_timestamp_are_a_set_whatever_their_category_names(spark, conf):
    """The items of a basket share a timestamp: which of them is the label and their order in the
    inputs must not follow the category names. Renaming the categories so that their alphabetical
    order reverses must give the same samples, category for category (sorting a basket by its
    category keys made the label its alphabetically first category)."""
    forward = ["a1", "b1", "c1", "d1"]
    reverse = ["z9", "y9", "x9", "w9"]  # same categories, alphabetical order reversed

    def samples(names):
        rows = [(f"u{u}", at(w, 1, 10), names[j], "purchase", f"item{j}")
                for u in range(5) for w in range(6) for j in range(4)]
        ev = events(spark, rows)
        prof = build_profiles(ev, conf.features)
        vocab = build_vocab(ev, 3)
        seqs = build_sequences(ev, prof, interest_stages(prof, conf.stages), vocab, conf, at(4, 0, 0), at(5, 0, 0))
        ids = vocab.collect()
        key = {r.idx: r.key for r in ids if r.kind == "category"}
        item = {r.idx: r.key for r in ids if r.kind == "item"}
        return {(s.user_id, s.cutoff): (names.index(key[s.next_category]),
                                        [item[i] for i in s.ev_item if i], [names.index(key[c]) for c in s.ev_category if c])
                for s in seqs.collect()}

    a, b = samples(forward), samples(reverse)
    assert len(a) == 25 and a == b
    # The label is one of the basket's events drawn by the hash, not always the same position.
    assert len({label for label, _, _ in a.values()}) > 1
    # Inside each basket the order is the hash's, so it differs between users.
    assert len({tuple(items[-4:]) for _, items, _ in a.values()}) > 1


def test_inputs_at_any_time_see_earlier_events_and_complete_windows_only(spark, conf):
    """build_inputs_at (the event-level protocol's view of the pipeline's model): at a basket's
    own time the basket is not seen, a second later it is; windows count only once complete (at
    a window boundary the inputs equal the training sample's: the sequences test checks it)."""
    rows = [("u", at(w, d, 9), "c1", "view") for w in range(5) for d in range(3)]
    rows += [("u", at(3, 4, 10), "c2", "purchase"), ("u", at(3, 4, 10), "c3", "purchase")]  # one basket
    rows += [("w", at(3, d, 9), "c2", "view") for d in range(3)]  # a user with no complete window yet
    ev = events(spark, rows)
    conf.sequences.max_events, conf.sequences.max_windows = 20, 3
    prof = build_profiles(ev, conf.features)
    vocab = build_vocab(ev, 3)
    idx = {(r.kind, r.key): r.idx for r in vocab.collect()}
    c1, c2, c3 = (idx[("category", c)] for c in ("c1", "c2", "c3"))
    basket = at(3, 4, 10)
    cut = spark.createDataFrame(
        [("u", basket, "at"), ("u", basket + dt.timedelta(seconds=1), "after"), ("u", at(4, 0, 0), "boundary"),
         ("w", at(3, 5, 0), "new"), ("w", at(0, 0, 0), "before any event")],
        "user_id string, cutoff timestamp, tag string")
    got = {r.tag: r for r in build_inputs_at(ev, prof, vocab, conf, cut).collect()}
    assert set(got) == {"at", "after", "boundary", "new"}  # no event before: no row
    seen = lambda r: [c for c in r.ev_category if c]  # noqa: E731
    assert seen(got["at"]) == [c1] * 12  # weeks 0-3's views, not the basket of that very time
    assert sorted(seen(got["after"])[-2:]) == [c2, c3]
    week = lambda w: window_index_of(at(w), 7)  # noqa: E731
    assert got["at"].window == week(2)  # week 3 ends after the basket
    assert [c for c in got["at"].win_category if c] == [c1] * 3  # weeks 0, 1, 2
    assert got["boundary"].window == week(3)
    assert got["new"].window == week(2) and not any(got["new"].win_category) and seen(got["new"]) == [c2] * 3


def test_interval_buckets(spark):
    gaps = [None, 30, 200, 1000, 3600, 40000, 90000, 700000]
    df = spark.createDataFrame([(g,) for g in gaps], "g long")
    assert [r.b for r in df.select(interval_bucket(F.col("g")).alias("b")).collect()] == [1, 2, 3, 4, 5, 6, 7, 8]
    # The models read the same buckets through the Python twin (session starts: 30 minutes+).
    assert [interval_bucket_of(g) for g in gaps[1:]] == [2, 3, 4, 5, 6, 7, 8]
    assert interval_bucket_of(1799) == 4 and interval_bucket_of(1800) == 5


def test_input_summary_counts_every_problem_in_one_pass(spark):
    rows = [("a", at(0), "c1", "view", "i_c1"), ("a", at(0, 1), "c1", "search", None, None),
            ("a", at(0, 2), "c2", "review", "i_unknown", "   "),
            ("b", at(1), "c9", "view", "i_c9"),
            ("c", at(1, 1), "c1", "search", None, "x" * 30), ("c", at(2), "c1", "purchase", "i_gone")]
    # i_c1 twice in the catalogue: a duplicate key must not count an event twice
    items = spark.createDataFrame([("i_c1", "c1"), ("i_c1", "c1"), ("i_c1b", "c1"), ("i_c2", "c2")],
                                  "item_id string, category_id string")
    got = input_summary(events(spark, rows), items, text_limit=20)
    assert got == {"events": 6, "users": 3, "last_event": at(2), "users_with_one_event": 1,
                   "empty_texts": 2, "long_texts": 1,
                   "events_item_not_in_catalogue": 3,       # i_unknown, i_c9, i_gone (searches have no item)
                   "events_category_not_in_catalogue": 1}   # c9
    without_items = input_summary(events(spark, rows), None, text_limit=40)
    assert without_items["long_texts"] == 0 and "events_item_not_in_catalogue" not in without_items
    empty = input_summary(events(spark, []), items, text_limit=20)
    assert empty["events"] == 0 and empty["users"] == 0 and empty["last_event"] is None


def test_detection_quality_known_answer(spark):
    planted = spark.createDataFrame([("a", 10), ("b", 20), ("c", 30)], "user_id string, window long")
    detected = spark.createDataFrame(
        [("a", 11, 12), ("b", 25, 26), ("d", 5, 6)], "user_id string, window long, confirmed_window long")
    q = evaluate_detection(detected, planted)
    assert (q.planted, q.detected, q.matched_planted, q.matched_detected) == (3, 3, 1, 1)
    assert q.precision == pytest.approx(1 / 3) and q.recall == pytest.approx(1 / 3)
    assert q.median_delay_windows == 2

    # User e: two planted migrations, three detections. Planted 40 has two detections one window
    # away (39, 41): the earlier one is its match (delay 40 - 40); planted 42 takes 41 (delay 43 -
    # 42) over 43 (the tie again); 43 also matches 42, so every detection of e counts as matched.
    planted = spark.createDataFrame([("a", 10), ("b", 20), ("c", 30), ("e", 40), ("e", 42)],
                                    "user_id string, window long")
    detected = spark.createDataFrame(
        [("a", 11, 12), ("b", 25, 26), ("d", 5, 6), ("e", 41, 43), ("e", 39, 40), ("e", 43, 44)],
        "user_id string, window long, confirmed_window long")
    q = evaluate_detection(detected, planted)
    assert (q.planted, q.detected, q.matched_planted, q.matched_detected) == (5, 6, 3, 4)
    assert q.precision == pytest.approx(4 / 6) and q.recall == pytest.approx(3 / 5)
    assert q.median_delay_windows == 1  # delays 0 (e 40), 1 (e 42), 2 (a 10)
    assert evaluate_detection(detected, planted, tolerance=0).matched_planted == 0


@pytest.mark.card_env
def test_window_text_vector_is_the_weighted_mean_of_item_and_text_vectors(spark, conf):
    from interest_lib.features.embeddings import text_hash
    from interest_lib.features.profiles import weighted_window_events
    from interest_lib.features.text_profile import window_text_vectors

    rows = [("u", at(0, 0), "c1", "view", "iA"), ("u", at(0, 1), "c2", "purchase", "iB"),
            ("u", at(0, 2), "c2", "search", None, "red shoes"), ("u", at(1, 0), "c9", "view", "iZ")]
    ev = weighted_window_events(events(spark, rows), conf.features)
    items = spark.createDataFrame([("iA", [1.0, 0.0, 0.0]), ("iB", [0.0, 1.0, 0.0])],
                                  "item_id string, embedding array<float>")
    texts = spark.createDataFrame([(text_hash("red shoes", conf.embeddings), [0.0, 0.0, 1.0])],
                                  "text_hash string, embedding array<float>")
    got = {r.window - window_index_of(MONDAY, 7): r.text_vector
           for r in window_text_vectors(ev, items, texts, conf.embeddings).collect()}
    norm = math.sqrt(1 + 36 + 1.5 ** 2)  # view 1 x A + purchase 6 x B + search 1.5 x text
    assert got[0] == pytest.approx([1 / norm, 6 / norm, 1.5 / norm], abs=1e-6)
    assert 1 not in got  # iZ has no embedding: no vector rather than a wrong one


def six_weeks_of_two_users() -> list:
    """u views c1 for four weeks, then c2; v puts c3 in the cart every week."""
    rows = []
    for w in range(6):
        rows += [("u", at(w, d, 9 + d), "c1" if w < 4 else "c2", "view") for d in range(3)]
        rows += [("v", at(w, d, 9 + d), "c3", "cart") for d in range(2)]
    return rows


def test_featurize_rerun_on_the_same_events_writes_no_new_training_sequences(spark, tmp_conf, tables):
    from interest_lib.features.job import run_featurize
    from interest_lib.storage.catalog import GOLD_TRAINING_SEQUENCES, SILVER_EVENTS_SESSIONIZED

    rows = six_weeks_of_two_users()
    tables.write(events(spark, rows), SILVER_EVENTS_SESSIONIZED, mode="overwrite")
    first = run_featurize(spark, tmp_conf, tables, embed=False)
    version = tables.version(GOLD_TRAINING_SEQUENCES)
    second = run_featurize(spark, tmp_conf, tables, embed=False)
    assert first.sequences_written and not second.sequences_written
    assert tables.version(GOLD_TRAINING_SEQUENCES) == version  # train/evaluate see the same input
    assert second.sequences == first.sequences
    rows.append(("v", at(5, 6, 20), "c1", "view"))  # new data: a new version
    tables.write(events(spark, rows), SILVER_EVENTS_SESSIONIZED, mode="overwrite")
    assert run_featurize(spark, tmp_conf, tables, embed=False).sequences_written
    assert tables.version(GOLD_TRAINING_SEQUENCES) == version + 1


def test_featurize_rerun_keeps_what_the_same_inputs_committed_and_rebuilds_the_rest(spark, tmp_conf, tables):
    """A rerun on the same inputs resumes: tables whose newest commit is that input's output are
    kept (same version), a table another writer changed since is rebuilt with the same rows, and
    a changed setting rebuilds everything."""
    from interest_lib.features.job import run_featurize
    from interest_lib.storage.catalog import (
        GOLD_MIGRATION_FLOWS, GOLD_TRAINING_SEQUENCES, REF_VOCAB, SILVER_EVENTS_SESSIONIZED,
        SILVER_INTEREST_MIGRATIONS, SILVER_INTEREST_STAGES, SILVER_USER_INTEREST_WINDOWS,
    )

    outputs = (SILVER_USER_INTEREST_WINDOWS, SILVER_INTEREST_MIGRATIONS, GOLD_MIGRATION_FLOWS,
               SILVER_INTEREST_STAGES, REF_VOCAB, GOLD_TRAINING_SEQUENCES)
    rows = six_weeks_of_two_users()
    tables.write(events(spark, rows), SILVER_EVENTS_SESSIONIZED, mode="overwrite")
    first = run_featurize(spark, tmp_conf, tables, embed=False)
    versions = {name: tables.version(name) for name in outputs}
    stage_rows = sorted(map(tuple, tables.read(SILVER_INTEREST_STAGES).collect()))
    assert first.stage_rows == len(stage_rows) > 0

    # another writer empties silver.interest_stages: that table is not this input's output any more
    tables.write(tables.read(SILVER_INTEREST_STAGES).limit(0), SILVER_INTEREST_STAGES, mode="overwrite")
    second = run_featurize(spark, tmp_conf, tables, embed=False)
    after = {name: tables.version(name) for name in outputs}
    assert after == {**versions, SILVER_INTEREST_STAGES: versions[SILVER_INTEREST_STAGES] + 2}
    assert sorted(map(tuple, tables.read(SILVER_INTEREST_STAGES).collect())) == stage_rows
    assert (second.windows, second.migrations, second.flow_cells, second.stage_rows, second.sequences) == \
        (first.windows, first.migrations, first.flow_cells, first.stage_rows, first.sequences)
    assert not second.sequences_written

    # a changed setting is another input: every table is rebuilt (sequences only if they changed)
    other = dataclasses.replace(tmp_conf, stages=dataclasses.replace(tmp_conf.stages, trend_threshold=0.2))
    run_featurize(spark, other, tables, embed=False)
    for name in outputs[:-1]:
        assert tables.version(name) == after[name] + 1, name


@pytest.mark.parametrize("step", [7, 2])
def test_profile_activity_from_per_session_rows_equals_counting_the_events(spark, conf, step):
    """build_profiles aggregates the events once per (user, window, session, interest): its
    counts and weights equal those counted straight from the events (countDistinct of sessions,
    per-type sums, weights), for tumbling and sliding windows, sessions over several interests
    and a session that crosses a window boundary."""
    from interest_lib.features.profiles import weighted_window_events

    conf.features.step_days = step
    rows = [("u", at(0, 6, 23, 50), "c1", "view"), ("u", at(0, 6, 23, 55), "c2", "click"),
            ("u", at(0, 6, 23, 58), "c1", "cart")]
    rows += [(u, at(w, d, h), c, t) for u in ("u", "v") for w in range(2) for d in (0, 3) for h in (9, 18)
             for c, t in (("c1", "view"), ("c2", "search"), ("c1", "purchase"), ("c3", "review"))]
    ev = events(spark, rows).withColumn(  # the late-Sunday session runs past midnight into week 1
        S.SESSION_ID, F.when(F.col(S.EVENT_TIME) >= at(0, 6, 23), F.lit("s_cross")).otherwise(F.col(S.SESSION_ID)))
    ev = ev.unionByName(ev.filter(F.col(S.EVENT_TIME) == at(0, 6, 23, 58))
                        .withColumn(S.EVENT_TIME, F.lit(at(1, 0, 0, 5))).withColumn(S.EVENT_ID, F.lit("late")))
    got = {(r.user_id, r.window): r for r in build_profiles(ev, conf.features).collect()}
    w = weighted_window_events(ev, conf.features)
    want = w.groupBy(S.USER_ID, "window").agg(
        F.count(F.lit(1)).alias("n_events"), F.countDistinct(S.SESSION_ID).alias("n_sessions"),
        *[F.sum((F.col(S.EVENT_TYPE) == t).cast("long")).alias(f"n_{t}") for t in S.EVENT_TYPES]).collect()
    raw = {(r.user_id, r.window, r.interest): r.w for r in
           w.groupBy(S.USER_ID, "window", "interest").agg(F.sum("weight").alias("w")).collect()}
    assert len(got) == len(want) >= 4
    for r in want:
        g = got[(r.user_id, r.window)]
        assert g.asDict() | r.asDict() == g.asDict(), (r.user_id, r.window)
        total = sum(v for (u, k, _), v in raw.items() if (u, k) == (r.user_id, r.window))
        shares = {c: v / total for (u, k, c), v in raw.items() if (u, k) == (r.user_id, r.window)}
        assert dict(zip(g.window_categories, g.window_shares)) == pytest.approx(shares)
    assert any(g.n_sessions >= 2 for g in got.values())
