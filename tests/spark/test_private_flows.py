"""gold.migration_flows: exact counts without DP, noised and thresholded counts with it."""

import datetime as dt

import pytest

from interest_lib.features.migrations import FLOW_COLUMNS, migration_flows
from interest_lib.privacy import DpSettings, threshold_delta

pytestmark = pytest.mark.spark

START = dt.datetime(2026, 1, 5)
#: Known cells in window 3: a->b 30 users, a->c 6, b->c 4, c->a 1 (u_lone), d->d (no move).
CELLS = {("a", "b"): 30, ("a", "c"): 6, ("b", "c"): 4, ("c", "a"): 1}


def _migrations(spark):
    rows, n = [], 0
    for (src, dst), users in CELLS.items():
        for _ in range(users):
            rows.append((f"u{n:03d}", 3, START, src, dst))
            n += 1
    rows.append(("u_same", 3, START, "d", "d"))
    # Two users of the a->b cell also migrated earlier (window 2, e->f): 2 users, never published.
    rows += [("u000", 2, START - dt.timedelta(days=7), "e", "f"), ("u001", 2, START - dt.timedelta(days=7), "e", "f")]
    return spark.createDataFrame(
        rows, "user_id string, window long, window_start timestamp, from_category string, to_category string")


def test_without_dp_the_table_equals_the_exact_counts(spark):
    flows = migration_flows(_migrations(spark), min_group_size=5)
    assert flows.columns == FLOW_COLUMNS
    rows = flows.collect()
    assert {(r.from_category, r.to_category): r.users for r in rows} == {("a", "b"): 30, ("a", "c"): 6}
    assert all(r.dp_epsilon is None and r.dp_delta is None for r in rows)
    small = {(r.from_category, r.to_category): r.users for r in migration_flows(_migrations(spark), 2).collect()}
    assert small == {**{k: v for k, v in CELLS.items() if v >= 2}, ("e", "f"): 2}


def test_with_dp_no_published_cell_is_below_the_minimum_and_epsilon_is_recorded(spark):
    dp = DpSettings(epsilon=0.5, max_cells_per_user=1)
    migrations = _migrations(spark)
    published = []
    for _ in range(5):  # noise is fresh every time (a CSPRNG): check the rule on several draws
        rows = migration_flows(migrations, 5, dp=dp).collect()
        assert all(r.users >= 5 for r in rows)
        assert {r.dp_epsilon for r in rows} <= {0.5}
        assert all(r.dp_delta == pytest.approx(threshold_delta(dp, 5)) for r in rows)
        published.append({(r.from_category, r.to_category): r.users for r in rows})
    # The 30-user cell survives noise of scale 2; its published counts vary around 30.
    big = [p[("a", "b")] for p in published if ("a", "b") in p]
    assert len(big) == 5 and all(abs(v - 30) < 25 for v in big)


def test_with_dp_each_user_counts_in_at_most_max_cells(spark):
    # With a huge ε the noise is 0, so the table shows the bounded exact counts: u000 and u001
    # keep only their latest migration (window 3), so window 2's e->f cell is empty.
    rows = migration_flows(_migrations(spark), 2, dp=DpSettings(epsilon=1e6, max_cells_per_user=1)).collect()
    assert {(r.window, r.from_category, r.to_category): r.users for r in rows} == {
        (3, "a", "b"): 30, (3, "a", "c"): 6, (3, "b", "c"): 4}
    rows = migration_flows(_migrations(spark), 2, dp=DpSettings(epsilon=1e6, max_cells_per_user=2)).collect()
    assert {(r.window, r.from_category, r.to_category): r.users for r in rows}[(2, "e", "f")] == 2


def test_a_minimum_group_size_below_two_is_refused(spark):
    with pytest.raises(ValueError, match="migration.min_group_size"):
        migration_flows(_migrations(spark), 1)
