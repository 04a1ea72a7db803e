"""Migration detection between a user's consecutive windows, flows for BI, and evaluation.

At each active window k of a user with a previous active window p, compare the smoothed profile
up to p (P) with the distribution of what the user did from window k on (Q):

- Q is the event-weighted mix of windows k and the next active window (so every migration is
  confirmed by one more window: a burst of a few days is outweighed);
- ``divergence`` = Jensen-Shannon divergence JS(P, Q) in bits (0 = same, 1 = disjoint);
- a migration when divergence >= ``js_threshold``, Q's top category differs from P's, the new
  top gained at least ``min_swing`` share and the old top lost at least as much. A repeat with
  the same destination within two windows is the same migration and is not written again.
  Rows are labelled with the change window k and the confirmation window.

Kinds, from the shares of ``from`` (P's top) and ``to`` (Q's top), with ``a`` = active_share:

=================  ====================  =========================
                   from keeps >= a in Q  from drops below a in Q
to < a in P        ``new_interest``      ``abrupt``
to >= a in P       ``gradual_drift``     ``fading``
=================  ====================  =========================
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, Window, functions as F, types as T

from interest_lib import schema as S
from interest_lib.conf import MigrationConf
from interest_lib.features.profiles import PROFILE_CATEGORIES, PROFILE_SHARES, WINDOW_CATEGORIES, WINDOW_SHARES
from interest_lib.features.windows import WINDOW, WINDOW_START
from interest_lib.privacy import DpSettings, check_min_group_size, publish_counts, threshold_delta

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


def merge_distributions(c1: str, s1: str, n1: str, c2: str, s2: str, n2: str) -> F.Column:
    """Event-count-weighted mix of two sparse distributions, as an array of
    struct(neg, interest) sorted by share descending (``neg`` = -share)."""
    keys = F.array_union(F.coalesce(F.col(c1), F.array()), F.coalesce(F.col(c2), F.array()))
    total = F.col(n1) + F.coalesce(F.col(n2), F.lit(0))

    def mixed(k):
        return (F.col(n1) * share_of(c1, s1, k) + F.coalesce(F.col(n2), F.lit(0)) * share_of(c2, s2, k)) / total

    return F.array_sort(F.transform(keys, lambda k: F.struct((-mixed(k)).alias("neg"), k.alias("interest"))))


def detect_migrations(profiles: DataFrame, conf: MigrationConf, active_share: float) -> DataFrame:
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


#: gold.migration_flows' columns: the cell, its published count, and the privacy the release spent.
FLOW_COLUMNS = [WINDOW, WINDOW_START, FROM, TO, "users", "dp_epsilon", "dp_delta"]


def migration_flows(migrations: DataFrame, min_group_size: int,
                    paths: DataFrame | None = None, level: int = 0, dp: DpSettings | None = None) -> DataFrame:
    """gold.migration_flows: per window, users moving from -> to (cells under the size hidden).

    Args:
        migrations: silver.interest_migrations.
        min_group_size: cells with fewer users are suppressed (nobody can be singled out); >= 2.
        paths: (category_id, category_path) rows; with ``level`` >= 1 the from / to categories
            are rolled up to that level of the hierarchy (e.g. 1 = families), so cells are
            large enough to publish.
        level: hierarchy level of the flow matrix; 0 keeps the migrations' own categories.
        dp: differential privacy (:mod:`interest_lib.privacy`): each user counts in at most
            ``dp.max_cells_per_user`` cells (their latest migrations), counts get discrete
            Laplace noise of scale Δ/ε, and the noised counts are thresholded. None = exact counts.

    Returns:
        :data:`FLOW_COLUMNS`; ``dp_epsilon`` / ``dp_delta`` are null for exact counts.
    """
    check_min_group_size(min_group_size)
    if paths is not None and level >= 1:
        rollup = paths.select(
            F.col(S.CATEGORY_ID).alias("_cat"),
            F.array_join(F.slice(F.split(S.CATEGORY_PATH, "/"), 1, level), "/").alias("_up"),
        ).distinct()
        for col in (FROM, TO):
            migrations = (
                migrations.join(rollup.withColumnRenamed("_cat", col), col, "left")
                .withColumn(col, F.coalesce("_up", F.col(col))).drop("_up")
            )
    moves = migrations.filter(F.col(FROM) != F.col(TO)).select(S.USER_ID, WINDOW, WINDOW_START, FROM, TO).distinct()
    if dp is not None:
        # Contribution bounding: a user's latest cells only (ties broken by the cell, deterministic).
        latest = Window.partitionBy(S.USER_ID).orderBy(F.col(WINDOW).desc(), FROM, TO)
        moves = moves.withColumn("_n", F.row_number().over(latest)).filter(F.col("_n") <= dp.max_cells_per_user)
    exact = moves.groupBy(WINDOW, WINDOW_START, FROM, TO).agg(F.count(F.lit(1)).alias("users"))
    if dp is None:
        return (exact.filter(F.col("users") >= min_group_size)
                .withColumn("dp_epsilon", F.lit(None).cast("double"))
                .withColumn("dp_delta", F.lit(None).cast("double")).select(*FLOW_COLUMNS))
    delta = threshold_delta(dp, min_group_size)

    def noise(batches):
        for pdf in batches:
            values, keep = publish_counts(pdf["users"].to_numpy(), min_group_size, dp)
            out = pdf.assign(users=values)[keep]
            yield out.assign(dp_epsilon=dp.epsilon, dp_delta=delta)

    schema = T.StructType([*exact.schema.fields, T.StructField("dp_epsilon", T.DoubleType()),
                           T.StructField("dp_delta", T.DoubleType())])
    return exact.mapInPandas(noise, schema).select(*FLOW_COLUMNS)


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
