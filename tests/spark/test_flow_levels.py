"""gold.migration_flows on a hierarchy where a category sits under two departments: one path per
category (its majority department), and the flow level chosen by ``auto``."""

import datetime as dt

import pytest

from interest_lib.conf import ConfigError, load_config
from interest_lib.features.job import flow_level
from interest_lib.features.migrations import (
    choose_flow_level, flow_coverage, migration_flows, one_path_per_category, parse_flow_level,
)

pytestmark = pytest.mark.spark

START = dt.datetime(2026, 1, 5)


def _paths_events(spark):
    # SOAP: 3 events under GROCERY (two types) and 2 under DRUG GM -> GROCERY, its most frequent
    # GROCERY path (BAR, 2). TEA: 1 under DRUG GM, 1 under GROCERY -> tie, alphabetical: DRUG GM.
    rows = [("SOAP", "GROCERY/SOAP/BAR")] * 2 + [("SOAP", "GROCERY/SOAP/FOAM")] + [("SOAP", "DRUG GM/SOAP/LIQ")] * 2
    rows += [("TEA", "GROCERY/TEA/GREEN"), ("TEA", "DRUG GM/TEA/BLACK"), ("BEER", "DRUG GM/BEER/ALE"),
             ("MILK", "GROCERY/MILK/WHOLE"), ("NOPATH", None)]
    return spark.createDataFrame(rows, "category_id string, category_path string")


def _migrations(spark, cells):
    rows, n = [], 0
    for (window, src, dst), users in cells.items():
        for _ in range(users):
            rows.append((f"u{n:03d}", window, START + dt.timedelta(weeks=window), src, dst))
            n += 1
    return spark.createDataFrame(
        rows, "user_id string, window long, window_start timestamp, from_category string, to_category string")


def test_one_path_per_category_is_its_majority_department(spark):
    paths = {r.category_id: r.category_path for r in one_path_per_category(_paths_events(spark)).collect()}
    assert paths == {"SOAP": "GROCERY/SOAP/BAR", "TEA": "DRUG GM/TEA/BLACK", "BEER": "DRUG GM/BEER/ALE",
                     "MILK": "GROCERY/MILK/WHOLE"}


def test_a_migration_into_a_two_department_category_is_counted_once(spark):
    # 3 users move BEER -> SOAP. With both of SOAP's paths, each would land in DRUG GM -> DRUG GM
    # (dropped) and DRUG GM -> GROCERY; with one path: DRUG GM -> GROCERY, 3 users, once.
    migrations = _migrations(spark, {(1, "BEER", "SOAP"): 3})
    paths = one_path_per_category(_paths_events(spark))
    flows = migration_flows(migrations, 2, paths, level=1).collect()
    assert [(f.from_category, f.to_category, f.users) for f in flows] == [("DRUG GM", "GROCERY", 3)]
    assert migration_flows(migrations, 2, paths, level=2).select("to_category").first()[0] == "GROCERY/SOAP"


def test_auto_chooses_the_finest_level_whose_cells_hold_most_migrations(spark):
    paths = one_path_per_category(_paths_events(spark))
    # window 1: 2 users MILK -> SOAP (GROCERY -> GROCERY), 2 users MILK -> TEA, 1 user MILK -> BEER
    migrations = _migrations(spark, {(1, "MILK", "SOAP"): 2, (1, "MILK", "TEA"): 2, (1, "MILK", "BEER"): 1})
    # category level: cells 2, 2, 1 -> 4 of 5 published at min 2; department level: GROCERY ->
    # DRUG GM holds 3 (TEA, BEER), MILK -> SOAP vanishes inside GROCERY -> 3 of 5
    assert flow_coverage(migrations, paths, 0, 2) == pytest.approx(0.8)
    assert flow_coverage(migrations, paths, 1, 2) == pytest.approx(0.6)
    level, coverage = choose_flow_level(migrations, paths, 2, 0.5)
    assert level == 0 and list(coverage) == [0, 3, 2, 1]
    # at min 3 no category cell passes (0 %), departments hold 60 %: the coarser level wins
    assert choose_flow_level(migrations, paths, 3, 0.5)[0] == 1
    # nothing reaches 90 %: the level of the highest coverage (the finest of equals)
    assert choose_flow_level(migrations, paths, 2, 0.9) == (0, {0: 0.8, 3: 0.8, 2: 0.8, 1: 0.6})


def test_flow_level_setting(spark):
    assert parse_flow_level("auto") is None and parse_flow_level(2) == 2 and parse_flow_level("0") == 0
    with pytest.raises(ValueError, match="migration.flow_level"):
        parse_flow_level("departments")
    migrations = _migrations(spark, {(1, "MILK", "TEA"): 2})
    paths = one_path_per_category(_paths_events(spark))
    assert flow_level(migrations, paths, load_config(overrides=["migration.flow_level=1"]), False) == (1, {})
    with pytest.raises(ConfigError, match="dp_epsilon"):
        flow_level(migrations, paths, load_config(), private=True)
