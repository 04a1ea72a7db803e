"""The generate job on a small store: raw file layout, counts, funnel, planted truth, dirt,
duplicates, late arrivals and determinism across partitionings (real local Spark)."""

from __future__ import annotations

import datetime as dt
import glob
import json
import os

import pandas as pd
import pytest
from pyspark.sql import functions as F

from interest_lib import schema as S
from interest_lib.conf import load_config
from interest_lib.generate import PLANTED_KINDS, run_generate
from interest_lib.generate.dirt import BAD_TIMES, NONNUMERIC_PRICES, UNKNOWN_EVENT_TYPE
from interest_lib.storage import Tables
from interest_lib.storage.catalog import REF_PLANTED_MIGRATIONS

pytestmark = [pytest.mark.spark]

ISO_RE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"


def make_conf(root, **generate):
    overrides = [f"storage.warehouse={root / 'warehouse'}", f"storage.raw_dir={root / 'raw'}",
                 "spark.master=local[2]", "spark.shuffle_partitions=4"]
    overrides += [f"generate.{k}={v}" for k, v in generate.items()]
    return load_config(overrides=overrides)


def read_raw(spark, raw_dir, fmt="jsonl"):
    """All raw event rows as strings, with the arrival_date folder as a string column."""
    schema = S.RAW_EVENT_SCHEMA.add("arrival_date", "string")
    path = os.path.join(raw_dir, "events")
    if fmt == "csv":
        return spark.read.schema(schema).option("header", "true").csv(path)
    return spark.read.schema(schema).json(path)


@pytest.fixture(scope="module")
def store(spark, tmp_path_factory):
    """One generated store shared by the module's tests: (conf, stats, events pandas, tables)."""
    root = tmp_path_factory.mktemp("generate")
    conf = make_conf(root, users=400, mean_events_per_user=80, partitions=3)
    tables = Tables(spark, conf.storage)
    stats = run_generate(spark, conf, tables)
    raw = read_raw(spark, conf.storage.raw_dir)
    return conf, stats, raw.toPandas(), tables


def clean_rows(events: pd.DataFrame) -> pd.DataFrame:
    """Rows with a well-formed, in-period time, a known type and a user (no dirt there)."""
    ok = (events[S.EVENT_TIME].str.match(ISO_RE) & events[S.USER_ID].notna()
          & events[S.EVENT_TYPE].isin(S.EVENT_TYPES))
    out = events[ok].copy()
    out["ts"] = pd.to_datetime(out[S.EVENT_TIME], utc=True, errors="coerce")
    return out[out.ts.notna() & (out.ts < pd.Timestamp("2027-01-01", tz="UTC"))]


def test_raw_layout_and_counts(store):
    conf, stats, events, _ = store
    raw_dir = conf.storage.raw_dir
    folders = sorted(os.listdir(os.path.join(raw_dir, "events")))
    dates = [f for f in folders if f.startswith("arrival_date=")]
    assert dates and all(dt.date.fromisoformat(f.split("=")[1]) for f in dates)
    files = glob.glob(os.path.join(raw_dir, "events", "arrival_date=*", "part-*.json"))
    assert files
    with open(files[0], encoding="utf-8") as fh:
        record = json.loads(fh.readline())
    assert list(record) == list(S.RAW_FIELDS)           # every field, nulls explicit
    assert all(v is None or isinstance(v, str) for v in record.values())
    # Dirt modifies records, duplicates add them: raw rows = clean + duplicates.
    assert len(events) == stats["events_written"] == stats["events_clean"] + stats["duplicates"]
    assert events[S.EVENT_ID].nunique() == stats["events_clean"]
    assert stats["users"] == 400 == events[S.EVENT_ID].str[1:8].nunique()
    assert sum(stats[f"users_{k}"] for k in ("stable", "gradual", "abrupt", "seasonal",
                                             "life_stage", "burst")) == 400
    items = pd.read_json(glob.glob(os.path.join(raw_dir, "items", "part-*.json"))[0], lines=True)
    assert list(items.columns) == S.ITEM_SCHEMA.fieldNames()
    assert len(items) == stats["items"] and items[S.ITEM_ID].is_unique
    known = set(items[S.ITEM_ID])
    assert set(events[S.ITEM_ID].dropna()) <= known


def test_funnel(store):
    _, _, events, _ = store
    n = clean_rows(events)[S.EVENT_TYPE].value_counts()
    assert n["view"] > n["click"] > n["cart"] > n["purchase"] > 0
    assert n["view"] > 10 * n["purchase"] and n["purchase"] > n["review"] > 0
    assert n["search"] > 0


def test_dirt_counts_match_stats(store):
    _, stats, events, _ = store
    assert (events[S.EVENT_TYPE] == UNKNOWN_EVENT_TYPE).sum() == stats["dirt_unknown_event_type"]
    assert events[S.USER_ID].isna().sum() == stats["dirt_null_user_id"]
    assert events[S.EVENT_TIME].isin(BAD_TIMES).sum() == stats["dirt_bad_event_time"]
    assert events[S.PRICE].isin(NONNUMERIC_PRICES).sum() == stats["dirt_nonnumeric_price"]
    assert events[S.PRICE].str.startswith("-", na=False).sum() == stats["dirt_negative_price"]
    stamped = pd.to_datetime(events[S.EVENT_TIME].where(events[S.EVENT_TIME].str.match(ISO_RE)),
                             utc=True, errors="coerce")
    assert (stamped > pd.Timestamp("2027-06-01", tz="UTC")).sum() == stats["dirt_future_event_time"]
    for kind in ("null_user_id", "bad_event_time", "unknown_event_type", "future_event_time",
                 "negative_price", "nonnumeric_price"):
        assert stats[f"dirt_{kind}"] > 0, kind
    assert 0.005 < stats["dirt_total"] / stats["events_clean"] < 0.02


def test_duplicates_are_exact_copies(store):
    _, stats, events, _ = store
    counts = events[S.EVENT_ID].value_counts()
    assert (counts > 1).sum() == stats["duplicates"] > 0 and counts.max() == 2
    dups = events[events[S.EVENT_ID].isin(counts[counts > 1].index)]
    assert len(dups.drop_duplicates()) == stats["duplicates"]   # both copies identical


def test_late_records_in_later_folder(store):
    _, stats, events, _ = store
    ok = clean_rows(events)
    lag = (pd.to_datetime(ok["arrival_date"]) - pd.to_datetime(ok[S.EVENT_TIME].str[:10])).dt.days
    assert (lag >= 0).all() and lag.max() <= 7
    assert (lag > 0).sum() == stats["late"] > 0


def test_planted_migrations_known_answer(store):
    _, stats, events, tables = store
    planted = tables.read(REF_PLANTED_MIGRATIONS)
    assert planted.schema.fieldNames() == S.PLANTED_MIGRATION_SCHEMA.fieldNames()
    mig = planted.toPandas()
    assert len(mig) == stats["planted_migrations"] > 0
    assert set(mig.kind) <= set(PLANTED_KINDS) and (mig.from_category != mig.to_category).all()
    ok = clean_rows(events)
    assert set(mig.raw_user_id) <= set(ok[S.USER_ID])
    by_user = dict(tuple(ok.groupby(S.USER_ID)))
    # Each migration's phase before it starts at the user's previous planted time (or the period
    # start) and its phase after it ends at the next one (or the period end).
    mig = mig.sort_values(["raw_user_id", "migration_time"])
    times = pd.to_datetime(mig.migration_time).dt.tz_localize("UTC")
    mig["at"] = times
    by_mig_user = times.groupby(mig.raw_user_id)
    mig["prev"] = by_mig_user.shift(1).fillna(pd.Timestamp.min.tz_localize("UTC"))
    mig["next"] = by_mig_user.shift(-1).fillna(pd.Timestamp.max.tz_localize("UTC"))
    rows = []
    for m in mig.itertuples():
        ev = by_user[m.raw_user_id]
        hit = ev[S.CATEGORY_ID] == m.to_category
        before = (ev.ts >= m.prev) & (ev.ts < m.at)
        after = (ev.ts >= m.at) & (ev.ts < m.next)
        near_b = before & (ev.ts >= m.at - pd.Timedelta(days=14))
        near_a = after & (ev.ts < m.at + pd.Timedelta(days=14))
        rows.append((m.kind, hit[before].sum(), before.sum(), hit[after].sum(), after.sum(),
                     hit[near_b].sum(), near_b.sum(), hit[near_a].sum(), near_a.sum()))
    res = pd.DataFrame(rows, columns=["kind", "hit_b", "n_b", "hit_a", "n_a",
                                      "near_hit_b", "near_b", "near_hit_a", "near_a"])
    pooled = res.groupby("kind").sum()
    share_before = pooled.hit_b / pooled.n_b
    share_after = pooled.hit_a / pooled.n_a
    # After the planted time the destination takes a much larger share of the user's events
    # than before it, for every kind; and it grows across the planted time (two weeks each side).
    assert (share_after > 2 * share_before).all(), pd.DataFrame({"b": share_before,
                                                                 "a": share_after})
    assert (share_after > 0.25).all()
    assert (pooled.near_hit_a / pooled.near_a > 1.5 * pooled.near_hit_b / pooled.near_b).all()
    # Abrupt switches are sharp: per user, the destination is (almost) absent before and
    # takes a larger share after.
    abrupt = res[(res.kind == "abrupt") & (res.n_b >= 5) & (res.n_a >= 5)]
    assert len(abrupt) > 20
    assert (abrupt.hit_a / abrupt.n_a > abrupt.hit_b / abrupt.n_b).mean() > 0.9


def test_deterministic_across_partitions_and_overwrites(spark, tmp_path):
    runs = []
    for name, parts in (("a", 1), ("b", 5)):
        conf = make_conf(tmp_path / name, users=60, mean_events_per_user=40, partitions=parts,
                         format="csv")
        stats = run_generate(spark, conf, Tables(spark, conf.storage))
        raw = read_raw(spark, conf.storage.raw_dir, "csv")
        planted = Tables(spark, conf.storage).read(REF_PLANTED_MIGRATIONS)
        runs.append((stats, sorted(raw.collect()), sorted(planted.collect())))
        assert glob.glob(str(tmp_path / name / "raw" / "events" / "arrival_date=*" / "part-*.csv"))
    (stats_a, raw_a, planted_a), (stats_b, raw_b, planted_b) = runs
    assert stats_a == stats_b
    assert raw_a == raw_b and len(raw_a) == stats_a["events_written"]
    assert planted_a == planted_b
    # A rerun overwrites the raw output instead of adding to it.
    conf = make_conf(tmp_path / "a", users=20, mean_events_per_user=40, format="csv")
    stats_c = run_generate(spark, conf, Tables(spark, conf.storage))
    assert read_raw(spark, conf.storage.raw_dir, "csv").count() == stats_c["events_written"]
    assert stats_c["events_written"] < stats_a["events_written"]
    assert (Tables(spark, conf.storage).read(REF_PLANTED_MIGRATIONS)
            .filter(F.col("raw_user_id") >= "u0000020").count() == 0)
