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

import math

from pyspark.sql import DataFrame, Window, functions as F, types as T

from interest_lib import schema as S
from interest_lib.conf import MigrationConf
from interest_lib.features.detection_quality import DetectionQuality, detection_quality
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


def _share(cats, shares) -> dict:
    """A sparse (categories, shares) pair as a dict; None or empty -> {}."""
    if cats is None or len(cats) == 0:
        return {}
    return dict(zip(cats, shares))


def _log2(x: float) -> float:
    # Spark's log2 is ln(x) / ln(2); math.log2 can differ from it in the last bit.
    return math.log(x) / _LN2


_LN2 = math.log(2.0)


def _term(a: float, m: float) -> float:
    return a * _log2(a / m) if a > 0 else 0.0


def compare_windows(p_cats, p_shares, c1, s1, n1: int, c2, s2, n2: int, active_share: float):
    """Compare profile P with Q, the event-weighted mix of windows 1 and 2 (see the module doc).

    Args:
        p_cats, p_shares: P, sorted by share descending (categories unique).
        c1, s1, n1: window 1's categories, shares and events; c2, s2, n2: window 2's.
        active_share: the ``a`` of the kinds and of from / to_categories.

    Returns:
        (from, to, divergence, to_before, to_after, from_before, from_after, lost, gained), with
        from / to None when P or Q is empty. Each step is O(categories) with dicts; the sums run
        in the order of the former SQL expression (P's keys, then Q's new keys) and so give the
        same floats.
    """
    p = _share(p_cats, p_shares)
    w1, w2 = _share(c1, s1), _share(c2, s2)
    n2 = 0 if n2 is None else n2
    total = float(n1 + n2)
    mixed = {}
    for k in list(w1) + [k for k in w2 if k not in w1]:
        mixed[k] = (n1 * w1.get(k, 0.0) + n2 * w2.get(k, 0.0)) / total
    # share descending, ties by category id (as array_sort of struct(-share, id))
    q_order = sorted(mixed, key=lambda k: (-mixed[k], k))
    js = 0.0
    for k in list(p) + [k for k in q_order if k not in p]:
        pk, qk = p.get(k, 0.0), mixed.get(k, 0.0)
        m = (pk + qk) / 2
        js = js + 0.5 * _term(pk, m) + 0.5 * _term(qk, m)
    frm = next(iter(p), None)
    to = q_order[0] if q_order else None
    lost = [c for c in p if mixed.get(c, 0.0) < p[c] - active_share]
    gained = [c for c in q_order if mixed[c] > p.get(c, 0.0) + active_share]
    return (frm, to, js, p.get(to, 0.0), mixed.get(to, 0.0), p.get(frm, 0.0), mixed.get(frm, 0.0),
            lost, gained)


def migration_kind(to_before: float, from_after: float, active_share: float) -> str:
    """The kind of a migration (the module doc's table)."""
    if to_before < active_share:
        return "new_interest" if from_after >= active_share else "abrupt"
    return "gradual_drift" if from_after >= active_share else "fading"


def passes_migration_test(frm, to, js: float, to_before: float, to_after: float, from_before: float,
                          from_after: float, conf: MigrationConf) -> bool:
    """The migration test on :func:`compare_windows`' output (see the module doc): the top changed,
    divergence >= ``js_threshold``, the new top gained and the old lost >= ``min_swing``. Shared
    by batch detection and the stream's partial-window alerts."""
    return not (frm is None or to is None or frm == to or not js >= conf.js_threshold
                or not to_after - to_before >= conf.min_swing
                or not from_before - from_after >= conf.min_swing)


_CANDIDATE_SCHEMA = T.StructType([
    T.StructField(S.USER_ID, T.StringType()), T.StructField(WINDOW, T.LongType()),
    T.StructField("_start_us", T.LongType()), T.StructField(CONFIRMED_WINDOW, T.LongType()),
    T.StructField(FROM, T.StringType()), T.StructField(TO, T.StringType()),
    T.StructField(FROM_CATEGORIES, T.ArrayType(T.StringType())),
    T.StructField(TO_CATEGORIES, T.ArrayType(T.StringType())),
    T.StructField(DIVERGENCE, T.DoubleType()), T.StructField(MAGNITUDE, T.DoubleType()),
    T.StructField(KIND, T.StringType()),
])


def _candidates(conf: MigrationConf, active_share: float):
    """mapInPandas function: compared window rows -> the rows that pass the migration test."""
    def run(batches):
        import pandas as pd

        cols = [f.name for f in _CANDIDATE_SCHEMA.fields]
        for pdf in batches:
            out = []
            for row in zip(pdf[S.USER_ID], pdf[WINDOW], pdf["_start_us"], pdf[CONFIRMED_WINDOW],
                           pdf["p_cats"], pdf["p_shares"], pdf[WINDOW_CATEGORIES], pdf[WINDOW_SHARES],
                           pdf[S.N_EVENTS], pdf["c_next"], pdf["s_next"], pdf["n_next"]):
                user, window, start, confirmed = row[:4]
                frm, to, js, to_before, to_after, from_before, from_after, lost, gained = compare_windows(
                    *row[4:8], int(row[8]), row[9], row[10], None if pd.isna(row[11]) else int(row[11]),
                    active_share)
                if not passes_migration_test(frm, to, js, to_before, to_after, from_before, from_after, conf):
                    continue
                out.append((user, int(window), int(start), int(confirmed), frm, to, lost, gained, js,
                            to_after - to_before, migration_kind(to_before, from_after, active_share)))
            yield pd.DataFrame(out, columns=cols)
    return run


def detect_migrations(profiles: DataFrame, conf: MigrationConf, active_share: float) -> DataFrame:
    """silver.user_interest_windows -> silver.interest_migrations (see module docstring).

    The lags and leads are Spark window functions; the comparison of each window row with its
    profile is :func:`compare_windows` in a pandas UDF (dict lookups: linear in the categories,
    where SQL array functions rebuilt the merged distribution for each lookup).
    """
    by_user = Window.partitionBy(S.USER_ID).orderBy(WINDOW)
    w = (
        profiles.filter(F.col(S.N_EVENTS) >= conf.min_events)
        .select(S.USER_ID, WINDOW, F.unix_micros(WINDOW_START).alias("_start_us"), S.N_EVENTS,
                WINDOW_CATEGORIES, WINDOW_SHARES, PROFILE_CATEGORIES, PROFILE_SHARES)
        .withColumn("p_cats", F.lag(PROFILE_CATEGORIES).over(by_user))
        .withColumn("p_shares", F.lag(PROFILE_SHARES).over(by_user))
        .withColumn("n_next", F.lead(S.N_EVENTS).over(by_user))
        .withColumn("c_next", F.lead(WINDOW_CATEGORIES).over(by_user))
        .withColumn("s_next", F.lead(WINDOW_SHARES).over(by_user))
        .withColumn(CONFIRMED_WINDOW, F.lead(WINDOW).over(by_user))
        .filter(F.col("p_cats").isNotNull() & F.col(CONFIRMED_WINDOW).isNotNull())
        .drop(PROFILE_CATEGORIES, PROFILE_SHARES)
    )
    candidates = w.mapInPandas(_candidates(conf, active_share), _CANDIDATE_SCHEMA)
    # One migration per change: a candidate right after one with the same destination is the
    # same migration seen again while the smoothed profile catches up.
    prev = Window.partitionBy(S.USER_ID).orderBy(WINDOW)
    deduped = (
        candidates.withColumn("_prev_to", F.lag(TO).over(prev))
        .withColumn("_prev_w", F.lag(WINDOW).over(prev))
        .filter(F.col("_prev_to").isNull() | (F.col("_prev_to") != F.col(TO))
                | (F.col(WINDOW) - F.col("_prev_w") > 2))
    )
    return deduped.withColumn(WINDOW_START, F.timestamp_micros("_start_us")).select(*MIGRATION_COLUMNS)


#: gold.migration_flows' columns: the cell, its published count, and the privacy the release spent.
FLOW_COLUMNS = [WINDOW, WINDOW_START, FROM, TO, "users", "dp_epsilon", "dp_delta"]

#: ``migration.flow_level`` value that lets :func:`choose_flow_level` pick the level.
FLOW_LEVEL_AUTO = "auto"


def parse_flow_level(value) -> int | None:
    """``migration.flow_level`` -> a level (0 = as detected, k >= 1 = the path's first k levels)
    or None for ``auto``; ValueError naming the setting otherwise."""
    text = str(value).strip().lower()
    if text == FLOW_LEVEL_AUTO:
        return None
    if text.isdigit():
        return int(text)
    raise ValueError(f"migration.flow_level must be auto or a level 0, 1, 2, ... (got {value!r})")


def one_path_per_category(events: DataFrame) -> DataFrame:
    """(category_id, category_path): one path per category, so a category under several branches
    of the hierarchy is counted in one cell of a roll-up, not in each.

    The path's first level is the category's most frequent first level over ``events`` (rows
    with category_id and category_path; each row counts once), then its most frequent path within
    that first level; ties: alphabetical first. Rows without a path are ignored.
    """
    with_path = events.filter(F.col(S.CATEGORY_PATH).isNotNull()).select(
        S.CATEGORY_ID, S.CATEGORY_PATH, F.split(S.CATEGORY_PATH, "/")[0].alias("_top"))
    tops = (with_path.groupBy(S.CATEGORY_ID, "_top").agg(F.count(F.lit(1)).alias("_n_top"))
            .withColumn("_r", F.row_number().over(
                Window.partitionBy(S.CATEGORY_ID).orderBy(F.col("_n_top").desc(), "_top")))
            .filter("_r = 1").select(S.CATEGORY_ID, "_top"))
    return (with_path.join(tops, [S.CATEGORY_ID, "_top"])
            .groupBy(S.CATEGORY_ID, S.CATEGORY_PATH).agg(F.count(F.lit(1)).alias("_n"))
            .withColumn("_r", F.row_number().over(
                Window.partitionBy(S.CATEGORY_ID).orderBy(F.col("_n").desc(), S.CATEGORY_PATH)))
            .filter("_r = 1").select(S.CATEGORY_ID, S.CATEGORY_PATH))


def roll_up(migrations: DataFrame, paths: DataFrame | None, level: int) -> DataFrame:
    """``migrations`` with from / to replaced by their path's first ``level`` levels (level 0,
    no paths, or a category without a path: unchanged). ``paths`` must hold one path per
    category (:func:`one_path_per_category`), or a migration lands in several cells."""
    if paths is None or level < 1:
        return migrations
    return _roll_up_levels(migrations.withColumn("_level", F.lit(level)), paths, [level]).drop("_level")


def _roll_up_levels(moves: DataFrame, paths: DataFrame, levels: list[int]) -> DataFrame:
    """:func:`roll_up` of each row of ``moves`` to the level in its ``_level`` column (one of
    ``levels``, all >= 1), with one join per side whatever the number of levels."""
    parts = F.split(S.CATEGORY_PATH, "/")
    ups = paths.select(S.CATEGORY_ID, F.explode(F.array(*[
        F.struct(F.lit(lv).alias("_level"), F.array_join(F.slice(parts, 1, lv), "/").alias("_up"))
        for lv in levels])).alias("_u")).select(
            F.col(S.CATEGORY_ID).alias("_cat"), "_u._level", "_u._up").distinct()
    for col in (FROM, TO):
        moves = (moves.join(ups.withColumnRenamed("_cat", col), [col, "_level"], "left")
                 .withColumn(col, F.coalesce("_up", F.col(col))).drop("_up"))
    return moves


def flow_coverages(migrations: DataFrame, paths: DataFrame | None, levels: list[int],
                   min_group_size: int) -> dict[int, float]:
    """Per level of ``levels``: the share of the migrations (rows of silver.interest_migrations)
    counted in a published cell of the flows at that level (from != to there, and the cell holds
    >= ``min_group_size`` users); 0.0 when there are no migrations. One aggregation for all
    levels: each move is repeated once per level and rolled up to it (:func:`roll_up`), with one
    join per side for every level at once."""
    moves = migrations.select(S.USER_ID, WINDOW, FROM, TO).withColumn(
        "_level", F.explode(F.array(*[F.lit(lv) for lv in levels])))
    deep = [lv for lv in levels if lv >= 1]
    if paths is not None and deep:
        moves = _roll_up_levels(moves, paths, deep)
    cells = (moves.filter(F.col(FROM) != F.col(TO)).distinct()
             .groupBy("_level", WINDOW, FROM, TO).agg(F.count(F.lit(1)).alias("users")))
    published = {r["_level"]: r["users"] for r in cells.filter(F.col("users") >= min_group_size)
                 .groupBy("_level").agg(F.sum("users").alias("users")).collect()}
    total = migrations.count()
    return {lv: float(published.get(lv) or 0) / total if total else 0.0 for lv in levels}


def flow_coverage(migrations: DataFrame, paths: DataFrame | None, level: int, min_group_size: int) -> float:
    """:func:`flow_coverages` of one level."""
    return flow_coverages(migrations, paths, [level], min_group_size)[level]


def choose_flow_level(migrations: DataFrame, paths: DataFrame | None, min_group_size: int,
                      min_coverage: float) -> tuple[int, dict]:
    """The flow level for ``migration.flow_level: auto``: the finest level whose published cells
    hold at least ``min_coverage`` of the migrations (:func:`flow_coverages`), finest first: 0
    (as detected), then the path's levels from the deepest to 1; when none reaches it, the level
    of the highest coverage (ties: the finer). Returns (level, coverage per level tried)."""
    depth = 0
    if paths is not None:
        depth = paths.agg(F.max(F.size(F.split(S.CATEGORY_PATH, "/")))).first()[0] or 0
    levels = [0] + list(range(depth, 0, -1))
    coverage = flow_coverages(migrations, paths, levels, min_group_size)
    for lv in levels:
        if coverage[lv] >= min_coverage:
            return lv, coverage
    return max(levels, key=lambda lv: (coverage[lv], -levels.index(lv))), coverage


def migration_flows(migrations: DataFrame, min_group_size: int,
                    paths: DataFrame | None = None, level: int = 0, dp: DpSettings | None = None) -> DataFrame:
    """gold.migration_flows: per window, users moving from -> to (cells under the size hidden).

    Args:
        migrations: silver.interest_migrations.
        min_group_size: cells with fewer users are suppressed (nobody can be singled out); >= 2.
        paths: (category_id, category_path) rows, one per category
            (:func:`one_path_per_category`); with ``level`` >= 1 the from / to categories are
            rolled up to that level of the hierarchy (e.g. 1 = families), so cells are large
            enough to publish.
        level: hierarchy level of the flow matrix; 0 keeps the migrations' own categories.
        dp: differential privacy (:mod:`interest_lib.privacy`): each user counts in at most
            ``dp.max_cells_per_user`` cells (their latest migrations), counts get discrete
            Laplace noise of scale Δ/ε, and the noised counts are thresholded. None = exact counts.

    Returns:
        :data:`FLOW_COLUMNS`; ``dp_epsilon`` / ``dp_delta`` are null for exact counts.
    """
    check_min_group_size(min_group_size)
    migrations = roll_up(migrations, paths, level)
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


def evaluate_detection(detected: DataFrame, planted: DataFrame, tolerance: int = 1) -> DetectionQuality:
    """Precision / recall / F1 within +-``tolerance`` windows, and the median detection delay
    (:func:`detection_quality` of both frames' rows, collected: one small job each; planted
    migrations exist only in generated stores).

    Args:
        detected: rows with user_id, window, confirmed_window.
        planted: rows with user_id (pseudonymised) and window (containing the planted time).
    """
    return detection_quality([tuple(r) for r in detected.select(S.USER_ID, WINDOW, CONFIRMED_WINDOW).collect()],
                             [tuple(r) for r in planted.select(S.USER_ID, WINDOW).collect()], tolerance)
