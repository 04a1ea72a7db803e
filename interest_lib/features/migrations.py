"""Migration detection between a user's consecutive windows, flows for BI, and evaluation.

At each active window k of a user with a previous active window p, compare the smoothed profile
up to p (P) with the raw distribution of window k (Q):

- ``divergence`` = Jensen-Shannon divergence JS(P, Q) in bits (0 = same, 1 = disjoint);
- a *candidate* when divergence >= ``js_threshold`` and Q's top category differs from P's;
- *confirmed* when the next active window's top category is the candidate's new one (a burst of
  a few days does not survive one more window). Only confirmed migrations are written, labelled
  with the change window k and the confirmation window.

Kinds, from the shares of ``from`` (P's top) and ``to`` (Q's top), with ``a`` = active_share:

=================  ====================  =========================
                   from keeps >= a in Q  from drops below a in Q
to < a in P        ``new_interest``      ``abrupt``
to >= a in P       ``gradual_drift``     ``fading``
=================  ====================  =========================
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, Window, functions as F

from interest_lib import schema as S
from interest_lib.conf import MigrationConf
from interest_lib.features.profiles import PROFILE_CATEGORIES, PROFILE_SHARES, WINDOW_CATEGORIES, WINDOW_SHARES
from interest_lib.features.windows import WINDOW, WINDOW_START

FROM = "from_category"
TO = "to_category"
DIVERGENCE = "divergence"
MAGNITUDE = "magnitude"
KIND = "kind"
CONFIRMED_WINDOW = "confirmed_window"
FROM_CATEGORIES = "from_categories"
TO_CATEGORIES = "to_categories"

MIGRATION_COLUMNS = [
    S.USER_ID, WINDOW, WINDOW_START, CONFIRMED_WINDOW, FROM, TO, FROM_CATEGORIES, TO_CATEGORIES,
    DIVERGENCE, MAGNITUDE, KIND,
]


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


def detect_migrations(profiles: DataFrame, conf: MigrationConf, active_share: float) -> DataFrame:
    """silver.user_interest_windows -> silver.interest_migrations (see module docstring)."""
    by_user = Window.partitionBy(S.USER_ID).orderBy(WINDOW)
    w = (
        profiles.filter(F.col(S.N_EVENTS) >= conf.min_events)
        .select(S.USER_ID, WINDOW, WINDOW_START, WINDOW_CATEGORIES, WINDOW_SHARES,
                PROFILE_CATEGORIES, PROFILE_SHARES)
        .withColumn("p_cats", F.lag(PROFILE_CATEGORIES).over(by_user))
        .withColumn("p_shares", F.lag(PROFILE_SHARES).over(by_user))
        .withColumn("next_top", F.lead(F.col(WINDOW_CATEGORIES)[0]).over(by_user))
        .withColumn(CONFIRMED_WINDOW, F.lead(WINDOW).over(by_user))
        .filter(F.col("p_cats").isNotNull() & (F.size(WINDOW_CATEGORIES) > 0))
    )
    frm, to = F.col("p_cats")[0], F.col(WINDOW_CATEGORIES)[0]
    candidates = (
        w.withColumn(FROM, frm).withColumn(TO, to)
        .withColumn(DIVERGENCE, js_divergence("p_cats", "p_shares", WINDOW_CATEGORIES, WINDOW_SHARES))
        .filter((F.col(DIVERGENCE) >= conf.js_threshold) & (F.col(FROM) != F.col(TO)))
    )
    to_before = share_of("p_cats", "p_shares", F.col(TO))
    from_after = share_of(WINDOW_CATEGORIES, WINDOW_SHARES, F.col(FROM))
    kind = (
        F.when((to_before < active_share) & (from_after >= active_share), "new_interest")
        .when(to_before < active_share, "abrupt")
        .when(from_after >= active_share, "gradual_drift")
        .otherwise("fading")
    )
    # Categories that lost / gained share between P and Q, biggest change first.
    lost = F.filter("p_cats", lambda c: share_of(WINDOW_CATEGORIES, WINDOW_SHARES, c)
                    < share_of("p_cats", "p_shares", c) - active_share)
    gained = F.filter(WINDOW_CATEGORIES, lambda c: share_of(WINDOW_CATEGORIES, WINDOW_SHARES, c)
                      > share_of("p_cats", "p_shares", c) + active_share)
    return (
        candidates.filter(F.col("next_top") == F.col(TO))
        .withColumn(MAGNITUDE, share_of(WINDOW_CATEGORIES, WINDOW_SHARES, F.col(TO)) - to_before)
        .withColumn(KIND, kind)
        .withColumn(FROM_CATEGORIES, lost)
        .withColumn(TO_CATEGORIES, gained)
        .select(*MIGRATION_COLUMNS)
    )


def migration_flows(migrations: DataFrame, min_group_size: int) -> DataFrame:
    """gold.migration_flows: per window, users moving from -> to (cells under the size hidden)."""
    return (
        migrations.groupBy(WINDOW, WINDOW_START, FROM, TO)
        .agg(F.countDistinct(S.USER_ID).alias("users"))
        .filter(F.col("users") >= min_group_size)
    )


@dataclass
class DetectionQuality:
    """Migration detection against the planted ground truth."""

    planted: int
    detected: int
    matched_planted: int
    matched_detected: int
    precision: float
    recall: float
    f1: float
    median_delay_windows: float

    def summary(self) -> str:
        """One line for reports."""
        return (f"precision {self.precision:.3f}, recall {self.recall:.3f}, F1 {self.f1:.3f}, "
                f"median delay {self.median_delay_windows:.1f} windows "
                f"({self.detected} detected / {self.planted} planted)")


def evaluate_detection(detected: DataFrame, planted: DataFrame, tolerance: int = 1) -> DetectionQuality:
    """Precision / recall / F1 within +-``tolerance`` windows, and the median detection delay.

    Args:
        detected: rows with user_id, window, confirmed_window.
        planted: rows with user_id (pseudonymised) and window (containing the planted time).
    """
    d = detected.select(S.USER_ID, F.col(WINDOW).alias("d_window"), CONFIRMED_WINDOW)
    p = planted.select(S.USER_ID, F.col(WINDOW).alias("p_window"))
    pairs = d.join(p, S.USER_ID).filter(F.abs(F.col("d_window") - F.col("p_window")) <= tolerance)
    # Each planted migration is matched by its closest detection and vice versa.
    best_for_planted = (
        pairs.withColumn("_r", F.row_number().over(
            Window.partitionBy(S.USER_ID, "p_window").orderBy(F.abs(F.col("d_window") - F.col("p_window")), "d_window")))
        .filter("_r = 1")
    )
    matched_planted = best_for_planted.count()
    matched_detected = pairs.select(S.USER_ID, "d_window").distinct().count()
    n_planted, n_detected = p.count(), d.count()
    delays = [r[0] for r in best_for_planted.select(F.col(CONFIRMED_WINDOW) - F.col("p_window")).collect()]
    precision = matched_detected / n_detected if n_detected else 0.0
    recall = matched_planted / n_planted if n_planted else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    delays.sort()
    median = float(delays[len(delays) // 2]) if delays else float("nan")
    return DetectionQuality(n_planted, n_detected, matched_planted, matched_detected, precision, recall, f1, median)
