"""Migration detection (per-row comparison in a pandas UDF) gives the same rows as the former
Spark SQL array implementation (tests/spark/migrations_sql_oracle.py) on generated users with
many categories and drifting interests."""

import datetime as dt

import numpy as np
import pytest

from interest_lib import schema as S
from interest_lib.conf import load_config
from interest_lib.features.migrations import MIGRATION_COLUMNS, detect_migrations
from interest_lib.features.profiles import build_profiles
from tests.spark.migrations_sql_oracle import detect_migrations_sql

pytestmark = [pytest.mark.spark]

MONDAY = dt.datetime(2026, 1, 5)


def drifting_events(spark, users=40, weeks=10, categories=60, seed=7):
    """Each user draws from a few favourite categories that change now and then, plus noise."""
    rng = np.random.default_rng(seed)
    types = ["view", "click", "cart", "purchase"]
    rows = []
    for u in range(users):
        favourites = rng.choice(categories, size=3, replace=False)
        for w in range(weeks):
            if rng.random() < 0.3:
                favourites[rng.integers(3)] = rng.integers(categories)
            for i in range(int(rng.integers(0, 25))):
                cat = favourites[rng.integers(3)] if rng.random() < 0.7 else rng.integers(categories)
                ts = MONDAY + dt.timedelta(weeks=w, days=int(rng.integers(7)), minutes=int(rng.integers(1440)))
                rows.append((f"e{len(rows):06d}", f"u{u:03d}", f"i{cat}", f"c{cat:03d}", f"f/s/c{cat:03d}",
                             types[rng.integers(4)], ts, ts.date(), None, None, "web", 0, MONDAY, f"s{u}_{w}_{i}"))
    return spark.createDataFrame(rows, S.SESSIONIZED_EVENT_SCHEMA)


@pytest.mark.parametrize("overrides", [
    ["migration.js_threshold=0.3", "migration.min_swing=0.2", "migration.min_events=3"],
    ["migration.js_threshold=0.1", "migration.min_swing=0.05", "migration.min_events=1", "features.decay=0.8",
     "features.min_share=0.0"],
], ids=["defaults", "loose"])
def test_detection_matches_the_sql_implementation(spark, overrides):
    conf = load_config(overrides=overrides)
    profiles = build_profiles(drifting_events(spark), conf.features).cache()
    new = detect_migrations(profiles, conf.migration, 0.1).collect()
    old = detect_migrations_sql(profiles, conf.migration, 0.1).collect()
    assert len(new) == len(old) > 10

    def key(r):
        return (r[S.USER_ID], r["window"])
    new, old = sorted(new, key=key), sorted(old, key=key)
    for a, b in zip(new, old):
        assert [a[c] for c in MIGRATION_COLUMNS if c != "divergence"] == [b[c] for c in MIGRATION_COLUMNS
                                                                          if c != "divergence"]
        # Python's libm log and the JVM's StrictMath log may differ in the last bit
        assert a["divergence"] == pytest.approx(b["divergence"], rel=1e-12, abs=1e-15)
    assert {r["kind"] for r in new} >= {"abrupt", "new_interest"}
