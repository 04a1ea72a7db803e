"""Test oracle: migration detection as it was written with Spark SQL array functions (before the
per-row comparison moved to :func:`interest_lib.features.migrations.compare_windows`).

Kept only to check that the new implementation gives the same rows, and for
bench/migration_detection.py's old-vs-new timing: each category lookup rebuilds the merged
distribution, so its cost grows with about the cube of a user's categories. Not for production.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window, functions as F

from interest_lib import schema as S
from interest_lib.conf import MigrationConf
from interest_lib.features.migrations import (
    CONFIRMED_WINDOW, DIVERGENCE, FROM, FROM_CATEGORIES, KIND, MAGNITUDE, MIGRATION_COLUMNS, TO, TO_CATEGORIES,
)
from interest_lib.features.profiles import PROFILE_CATEGORIES, PROFILE_SHARES, WINDOW_CATEGORIES, WINDOW_SHARES
from interest_lib.features.windows import WINDOW, WINDOW_START


def share_of(cats: str | F.Column, shares: str | F.Column, key: F.Column) -> F.Column:
    """Share of category ``key`` in a sparse (categories, shares) pair; 0 when absent."""
    cats = F.col(cats) if isinstance(cats, str) else cats
    shares = F.col(shares) if isinstance(shares, str) else shares
    pos = F.array_position(cats, key)
    return F.when(pos > 0, F.element_at(shares, pos.cast("int"))).otherwise(F.lit(0.0))


def js_divergence(p_cats: str, p_shares: str, q_cats: str, q_shares: str) -> F.Column:
    """Jensen-Shannon divergence (bits) of two sparse distributions, computed in SQL."""
    def term(a, m):
        return F.when(a > 0, a * F.log2(a / m)).otherwise(F.lit(0.0))

    def step(acc, k):
        p = share_of(p_cats, p_shares, k)
        q = share_of(q_cats, q_shares, k)
        m = (p + q) / 2
        return acc + 0.5 * term(p, m) + 0.5 * term(q, m)

    keys = F.array_union(F.coalesce(F.col(p_cats), F.array()), F.coalesce(F.col(q_cats), F.array()))
    return F.aggregate(keys, F.lit(0.0), step)


def merge_distributions(c1: str, s1: str, n1: str, c2: str, s2: str, n2: str) -> F.Column:
    """Event-count-weighted mix of two sparse distributions, as an array of
    struct(neg, interest) sorted by share descending (``neg`` = -share)."""
    keys = F.array_union(F.coalesce(F.col(c1), F.array()), F.coalesce(F.col(c2), F.array()))
    total = F.col(n1) + F.coalesce(F.col(n2), F.lit(0))

    def mixed(k):
        return (F.col(n1) * share_of(c1, s1, k) + F.coalesce(F.col(n2), F.lit(0)) * share_of(c2, s2, k)) / total

    return F.array_sort(F.transform(keys, lambda k: F.struct((-mixed(k)).alias("neg"), k.alias("interest"))))


def detect_migrations_sql(profiles: DataFrame, conf: MigrationConf, active_share: float) -> DataFrame:
    """silver.user_interest_windows -> silver.interest_migrations (see module docstring)."""
    by_user = Window.partitionBy(S.USER_ID).orderBy(WINDOW)
    w = (
        profiles.filter(F.col(S.N_EVENTS) >= conf.min_events)
        .select(S.USER_ID, WINDOW, WINDOW_START, S.N_EVENTS, WINDOW_CATEGORIES, WINDOW_SHARES,
                PROFILE_CATEGORIES, PROFILE_SHARES)
        .withColumn("p_cats", F.lag(PROFILE_CATEGORIES).over(by_user))
        .withColumn("p_shares", F.lag(PROFILE_SHARES).over(by_user))
        .withColumn("n_next", F.lead(S.N_EVENTS).over(by_user))
        .withColumn("c_next", F.lead(WINDOW_CATEGORIES).over(by_user))
        .withColumn("s_next", F.lead(WINDOW_SHARES).over(by_user))
        .withColumn(CONFIRMED_WINDOW, F.lead(WINDOW).over(by_user))
        .filter(F.col("p_cats").isNotNull() & F.col(CONFIRMED_WINDOW).isNotNull())
    )
    # Q: the change window and the next one together (more evidence; a burst of a few days is
    # outweighed by the following window), so a migration is confirmed one window later.
    q = merge_distributions(WINDOW_CATEGORIES, WINDOW_SHARES, S.N_EVENTS, "c_next", "s_next", "n_next")
    w = (w.withColumn("_q", q)
         .withColumn("q_cats", F.transform("_q", lambda x: x["interest"]))
         .withColumn("q_shares", F.transform("_q", lambda x: -x["neg"])))
    frm, to = F.col("p_cats")[0], F.col("q_cats")[0]
    to_before = share_of("p_cats", "p_shares", F.col(TO))
    to_after = share_of("q_cats", "q_shares", F.col(TO))
    from_before = share_of("p_cats", "p_shares", F.col(FROM))
    from_after = share_of("q_cats", "q_shares", F.col(FROM))
    candidates = (
        w.withColumn(FROM, frm).withColumn(TO, to)
        .filter(F.col(FROM) != F.col(TO))
        .withColumn(DIVERGENCE, js_divergence("p_cats", "p_shares", "q_cats", "q_shares"))
        .filter((F.col(DIVERGENCE) >= conf.js_threshold)
                & (to_after - to_before >= conf.min_swing) & (from_before - from_after >= conf.min_swing))
    )
    kind = (
        F.when((to_before < active_share) & (from_after >= active_share), "new_interest")
        .when(to_before < active_share, "abrupt")
        .when(from_after >= active_share, "gradual_drift")
        .otherwise("fading")
    )
    lost = F.filter("p_cats", lambda c: share_of("q_cats", "q_shares", c)
                    < share_of("p_cats", "p_shares", c) - active_share)
    gained = F.filter("q_cats", lambda c: share_of("q_cats", "q_shares", c)
                      > share_of("p_cats", "p_shares", c) + active_share)
    # One migration per change: a candidate right after one with the same destination is the
    # same migration seen again while the smoothed profile catches up.
    prev = Window.partitionBy(S.USER_ID).orderBy(WINDOW)
    deduped = (
        candidates.withColumn("_prev_to", F.lag(TO).over(prev))
        .withColumn("_prev_w", F.lag(WINDOW).over(prev))
        .filter(F.col("_prev_to").isNull() | (F.col("_prev_to") != F.col(TO))
                | (F.col(WINDOW) - F.col("_prev_w") > 2))
    )
    return (
        deduped.withColumn(MAGNITUDE, to_after - to_before)
        .withColumn(KIND, kind)
        .withColumn(FROM_CATEGORIES, lost)
        .withColumn(TO_CATEGORIES, gained)
        .select(*MIGRATION_COLUMNS)
    )
