"""The generator's pure numpy/pandas parts: catalogue, trajectories, events, dirt (no Spark)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from interest_lib import schema as S
from interest_lib.conf import GenerateConf
from interest_lib.generate.catalogue import TAXONOMY, build_catalogue
from interest_lib.generate.dirt import (
    BAD_TIMES, DIRT_KINDS, MAX_LATE_DAYS, NONNUMERIC_PRICES, UNKNOWN_EVENT_TYPE,
)
from interest_lib.generate.job import GenParams, profile_rows, simulate_users
from interest_lib.generate.trajectories import (
    DAY, KIND_SHARES, KINDS, PLANTED_KINDS, draw_profile, mixture,
)

pytestmark = pytest.mark.unit

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture(scope="module")
def params() -> GenParams:
    return GenParams.from_conf(GenerateConf(users=400, mean_events_per_user=60))


@pytest.fixture(scope="module")
def events(params) -> pd.DataFrame:
    return simulate_users(params, np.arange(400))


@pytest.fixture(scope="module")
def cat():
    return build_catalogue(42, 25)


# --- catalogue -------------------------------------------------------------------------------
def test_catalogue_tree_and_items(cat):
    n_leaves = cat.n_leaves
    assert len(TAXONOMY) == 8 and 60 <= n_leaves <= 100
    assert list(cat.category_ids[:3]) == ["c001", "c002", "c003"]
    assert all(p.count("/") == 2 for p in cat.category_paths)
    items = cat.items
    assert list(items.columns) == S.ITEM_SCHEMA.fieldNames()
    assert len(items) == n_leaves * 25 and items[S.ITEM_ID].is_unique
    assert items[S.ITEM_ID].str.fullmatch(r"i\d{6}").all()
    assert (items[S.PRICE] > 0).all()
    assert items[S.DESCRIPTION].isna().any() and items[S.DESCRIPTION].notna().mean() > 0.6
    shoes = items[items[S.CATEGORY_PATH] == "sports/running/shoes"]
    assert shoes[S.TITLE].str.contains(r"(?:running|trail) shoes|racing flats").all()
    # Prices follow the leaf: bikes cost more than seeds.
    bikes = items[items[S.CATEGORY_PATH] == "sports/cycling/bikes"][S.PRICE].median()
    seeds = items[items[S.CATEGORY_PATH] == "garden/plants/seeds"][S.PRICE].median()
    assert bikes > 50 * seeds


def test_catalogue_deterministic_from_seed(cat):
    again = build_catalogue(42, 25)
    pd.testing.assert_frame_equal(cat.items, again.items)
    other = build_catalogue(7, 25)
    assert list(other.category_paths) == list(cat.category_paths)  # same tree
    assert not other.items[S.PRICE].equals(cat.items[S.PRICE])     # other items


# --- trajectories ----------------------------------------------------------------------------
def test_kind_shares_and_planted_migrations(cat):
    profiles = [draw_profile(42, u, cat, 84, 100) for u in range(3000)]
    shares = pd.Series([p.kind for p in profiles]).value_counts(normalize=True)
    for kind, share in zip(KINDS, KIND_SHARES):
        assert abs(shares[kind] - share) < 0.03, kind
    for prof in profiles:
        assert (len(prof.migrations) > 0) == (prof.kind in PLANTED_KINDS)
        for t, src, dst in prof.migrations:
            assert 0 < t < 84 * DAY and src != dst
            leaves = list(prof.leaves)
            w_before = mixture(prof, [t - 3600])[0]
            w_after = mixture(prof, [t + 3600])[0]
            # At the planted time the destination overtakes the source.
            assert w_before[leaves.index(dst)] <= w_before[leaves.index(src)]
            assert w_after[leaves.index(dst)] > w_after[leaves.index(src)]


def test_mixture_rows_are_distributions(cat):
    prof = draw_profile(42, 11, cat, 84, 100)
    w = mixture(prof, np.linspace(0, 84 * DAY, 50))
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert (w >= 0).all()


def test_profile_rows(params):
    rows = profile_rows(params, np.arange(50))
    first = rows[rows.row_in_user == 0]
    assert first.raw_user_id.tolist() == [f"u{u:07d}" for u in range(50)]
    planted = rows[rows.migration_us >= 0]
    assert set(planted.kind) <= set(PLANTED_KINDS)
    assert planted.from_category.str.fullmatch(r"c\d{3}").all()


# --- events ----------------------------------------------------------------------------------
def test_simulation_independent_of_chunking(params, events):
    parts = pd.concat([simulate_users(params, np.arange(lo, min(lo + 37, 400)))
                       for lo in range(0, 400, 37)], ignore_index=True)
    pd.testing.assert_frame_equal(events.reset_index(drop=True), parts)


def test_event_fields(events):
    clean = events[events._dirt.isna()]
    assert list(events.columns[:len(S.RAW_FIELDS)]) == list(S.RAW_FIELDS)
    assert clean[~clean._dup][S.EVENT_ID].is_unique
    assert clean[S.EVENT_ID].str.fullmatch(r"e\d{13}").all()
    assert clean[S.USER_ID].str.fullmatch(r"u\d{7}").all()
    assert clean[S.EVENT_TIME].str.match(ISO).all()
    assert set(clean[S.EVENT_TYPE]) == set(S.EVENT_TYPES)
    assert set(clean[S.SOURCE]) == {"web", "app", "ios", "android"}
    search = clean[clean[S.EVENT_TYPE] == "search"]
    assert search[S.ITEM_ID].isna().all() and search[S.TEXT].notna().all()
    assert search[S.PRICE].isna().all()
    items = clean[clean[S.EVENT_TYPE] != "search"]
    assert items[S.ITEM_ID].notna().all() and items[S.PRICE].astype(float).gt(0).all()
    reviews = clean[clean[S.EVENT_TYPE] == "review"]
    assert len(reviews) > 0 and reviews[S.TEXT].str.len().gt(10).all()
    funnel = clean[clean[S.EVENT_TYPE].isin(["view", "click", "cart", "purchase"])]
    assert funnel[S.TEXT].isna().all()


def test_funnel_and_review_after_purchase(events):
    clean = events[events._dirt.isna() & ~events._dup]
    n = clean[S.EVENT_TYPE].value_counts()
    assert n["view"] > 2 * n["click"] > 0
    assert n["click"] > n["cart"] > n["purchase"] > n["review"] > 0
    assert n["view"] > 10 * n["purchase"]
    ts = pd.to_datetime(clean[S.EVENT_TIME])
    keyed = clean.assign(ts=ts)
    purchases = keyed[keyed[S.EVENT_TYPE] == "purchase"]
    reviews = keyed[keyed[S.EVENT_TYPE] == "review"]
    joined = reviews.merge(purchases, on=[S.USER_ID, S.ITEM_ID], suffixes=("", "_p"))
    ok = joined[joined.ts_p < joined.ts].drop_duplicates(S.EVENT_ID)
    assert len(ok) >= 0.95 * len(reviews)  # the rest lost their purchase to dirt


def test_sessions_bursts_and_heavy_tail(events):
    clean = events[events._dirt.isna() & ~events._dup].copy()
    clean["ts"] = pd.to_datetime(clean[S.EVENT_TIME])
    gaps = clean.groupby(S.USER_ID).ts.diff().dt.total_seconds().dropna()
    within = gaps[gaps < 1800]
    assert 0.7 < len(within) / len(gaps) < 0.95       # most gaps are inside sessions
    assert within.median() < 120                      # seconds to minutes apart
    assert gaps[gaps >= 1800].median() > 6 * 3600     # between sessions: hours to days
    per_user = clean.groupby(S.USER_ID).size()
    assert per_user.max() > 4 * per_user.median()     # heavy tail


# --- dirt ------------------------------------------------------------------------------------
def test_dirt_shapes_match_flags(events):
    kinds = events._dirt.value_counts()
    assert set(kinds.index) == set(DIRT_KINDS)
    assert (events[S.EVENT_TYPE] == UNKNOWN_EVENT_TYPE).sum() == kinds["unknown_event_type"]
    assert events[S.USER_ID].isna().sum() == kinds["null_user_id"]
    assert events[S.EVENT_TIME].isin(BAD_TIMES).sum() == kinds["bad_event_time"]
    assert events[S.PRICE].isin(NONNUMERIC_PRICES).sum() == kinds["nonnumeric_price"]
    assert events[S.PRICE].str.startswith("-", na=False).sum() == kinds["negative_price"]
    good_time = events[S.EVENT_TIME].str.match(ISO)
    stamped = pd.to_datetime(events[S.EVENT_TIME].where(good_time), errors="coerce", utc=True)
    future = stamped > pd.Timestamp("2027-06-01", tz="UTC")
    assert future.sum() == kinds["future_event_time"]
    total = len(events) - events._dup.sum()
    assert 0.005 < kinds.sum() / total < 0.02


def test_duplicates_and_late(events):
    copies = events[events._dup]
    assert len(copies) > 0 and copies._dirt.isna().all()
    originals = events.shift(1)[events._dup]
    cols = list(S.RAW_FIELDS) + ["arrival_date"]
    pd.testing.assert_frame_equal(copies[cols].reset_index(drop=True),
                                  originals[cols].reset_index(drop=True))
    ok = events[events._dirt.isna()]
    lag = (pd.to_datetime(ok.arrival_date) - pd.to_datetime(ok[S.EVENT_TIME].str[:10])).dt.days
    assert ((lag > 0) == ok._late).all()
    assert lag[ok._late].between(1, MAX_LATE_DAYS).all()
    assert ok._late.sum() > 0


def test_edge_cases(params):
    assert simulate_users(params, np.arange(0)).empty
    with pytest.raises(ValueError, match="dirt_rate"):
        GenParams.from_conf(GenerateConf(dirt_rate=1.5))
