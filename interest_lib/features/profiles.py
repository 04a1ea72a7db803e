"""Interest profiles: each user's weighted interest distribution per window, smoothed over time.

For user u, window k and category c:

- ``raw(u, k, c)`` = sum of the event-type weights of u's events on c in window k;
- ``profile(u, k, c)`` = sum over j >= 0 of ``decay**j * raw(u, k - j, c)`` (exponential recency
  decay carried across windows, truncated where ``decay**j`` < 1 %), normalised to shares.

Both are stored sparse, as parallel arrays sorted by share (categories below ``min_share`` are
dropped, the rest renormalised): nothing is ever a dense users x categories matrix. Profiles are
computed at the windows in which the user was active; ``windows_since_prev`` says how many
windows passed since the previous active one (empty windows are explicit, and decay applies).
``text_vector`` is the window's text interest (see :mod:`interest_lib.features.text_profile`).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

from pyspark.sql import DataFrame, Window, functions as F

from interest_lib import schema as S
from interest_lib.conf import FeaturesConf
from interest_lib.features.windows import INTEREST, WINDOW, WINDOW_END, WINDOW_START, assign_windows, interest_key, window_bounds

WEIGHT = "weight"
WINDOW_CATEGORIES = "window_categories"
WINDOW_SHARES = "window_shares"
PROFILE_CATEGORIES = "profile_categories"
PROFILE_SHARES = "profile_shares"
TOP_CATEGORIES = "top_categories"
ENTROPY = "entropy"
N_SESSIONS = "n_sessions"
WINDOWS_SINCE_PREV = "windows_since_prev"
TEXT_VECTOR = "text_vector"

#: Columns of silver.user_interest_windows, in order.
PROFILE_COLUMNS = [
    S.USER_ID, WINDOW, WINDOW_START, WINDOW_END, S.N_EVENTS, N_SESSIONS,
    *[f"n_{t}" for t in S.EVENT_TYPES], WINDOWS_SINCE_PREV, WINDOW_CATEGORIES, WINDOW_SHARES,
    PROFILE_CATEGORIES, PROFILE_SHARES, TOP_CATEGORIES, ENTROPY, TEXT_VECTOR,
]


def decay_horizon(decay: float, floor: float = 0.01) -> int:
    """Windows after which ``decay**j`` falls below ``floor`` (how far back a profile looks)."""
    if decay <= 0:
        return 0
    return max(0, math.ceil(math.log(floor) / math.log(decay)) - 1)


def event_weight(weights: dict) -> F.Column:
    """Column: the configured weight of each row's event type (0 for unknown types)."""
    mapping = F.create_map(*[x for k, v in weights.items() for x in (F.lit(k), F.lit(float(v)))])
    return F.coalesce(F.element_at(mapping, F.col(S.EVENT_TYPE)), F.lit(0.0))


def weighted_window_events(events: DataFrame, conf: FeaturesConf) -> DataFrame:
    """Events with ``window``, ``interest`` (category at the configured level) and ``weight``."""
    return (
        events.withColumn(INTEREST, interest_key(conf.category_level))
        .withColumn(WEIGHT, event_weight(conf.event_weights))
        .transform(lambda d: assign_windows(d, conf.window_days, conf.step_days))
    )


def to_distribution(df: DataFrame, value_col: str, min_share: float, cats_col: str,
                    shares_col: str, keys=(S.USER_ID, WINDOW)) -> DataFrame:
    """Rows (keys, interest, value) -> one row per keys with sparse shares sorted descending.

    Shares below ``min_share`` are dropped and the rest renormalised to sum to 1.
    """
    total = Window.partitionBy(*keys)
    kept = (
        df.filter(F.col(value_col) > 0)
        .withColumn("_share", F.col(value_col) / F.sum(value_col).over(total))
        .filter(F.col("_share") >= min_share)
        .withColumn("_share", F.col("_share") / F.sum("_share").over(total))
    )
    # Sorting structs (-share, interest) gives share descending, ties by category id.
    pairs = F.array_sort(F.collect_list(F.struct((-F.col("_share")).alias("neg"), F.col(INTEREST))))
    return (
        kept.groupBy(*keys).agg(pairs.alias("_pairs"))
        .select(*keys,
                F.transform("_pairs", lambda p: p[INTEREST]).alias(cats_col),
                F.transform("_pairs", lambda p: -p["neg"]).alias(shares_col))
    )


def entropy_bits(shares_col: str) -> F.Column:
    """Shannon entropy in bits of a shares array."""
    return F.aggregate(
        F.col(shares_col), F.lit(0.0),
        lambda acc, p: acc - F.when(p > 0, p * F.log2(p)).otherwise(F.lit(0.0)),
    )


def build_profiles(events: DataFrame, conf: FeaturesConf,
                   text_vectors: Optional[Callable[[DataFrame], DataFrame]] = None) -> DataFrame:
    """silver events -> silver.user_interest_windows (see the module docstring).

    Args:
        events: sessionized events (user_id, event_type, event_time, category_id,
            category_path, session_id).
        conf: the ``features`` configuration.
        text_vectors: optional function from the weighted window events to
            (user_id, window, text_vector) rows (see :mod:`text_profile`); without it the
            ``text_vector`` column is null.

    Returns:
        One row per (user, active window) with the columns :data:`PROFILE_COLUMNS`.
    """
    ev = weighted_window_events(events, conf)
    # One pass over the events: per (user, window, session, interest) the weight and the counts
    # per event type. Everything else is aggregated from these rows (a few per session), not from
    # the events again, and without countDistinct (whose Expand doubles the rows it shuffles).
    # With the default weights (multiples of 0.5) the sums are exact whatever the order of
    # addition; with others they are floating-point sums in no fixed order, as they always were
    # (Spark's partial aggregation never fixed one).
    types = [f"n_{t}" for t in S.EVENT_TYPES]
    per_session = ev.groupBy(S.USER_ID, WINDOW, S.SESSION_ID, INTEREST).agg(
        F.sum(WEIGHT).alias("raw"), F.count(F.lit(1)).alias(S.N_EVENTS),
        *[F.sum((F.col(S.EVENT_TYPE) == t).cast("long")).alias(n) for t, n in zip(S.EVENT_TYPES, types)],
    )
    raw = per_session.groupBy(S.USER_ID, WINDOW, INTEREST).agg(F.sum("raw").alias("raw"))
    activity = (
        per_session.groupBy(S.USER_ID, WINDOW, S.SESSION_ID)
        .agg(*[F.sum(c).alias(c) for c in [S.N_EVENTS, *types]])
        .groupBy(S.USER_ID, WINDOW)
        .agg(F.sum(S.N_EVENTS).alias(S.N_EVENTS),
             F.count(S.SESSION_ID).alias(N_SESSIONS),  # one row per session; a null id is not counted
             *[F.sum(c).alias(c) for c in types])
    )
    horizon = decay_horizon(conf.decay)
    # Each window's raw weights flow into the next `horizon` windows, decayed; only the
    # windows in which the user was active are kept (an inner join on the activity rows).
    lags = F.explode(F.sequence(F.lit(0), F.lit(horizon))).alias("_lag")
    decayed = (
        raw.select(S.USER_ID, WINDOW, INTEREST, "raw", lags)
        .withColumn(WINDOW, F.col(WINDOW) + F.col("_lag"))
        .withColumn("decayed", F.col("raw") * F.pow(F.lit(conf.decay), F.col("_lag")))
        .join(activity.select(S.USER_ID, WINDOW), [S.USER_ID, WINDOW])
        .groupBy(S.USER_ID, WINDOW, INTEREST).agg(F.sum("decayed").alias("decayed"))
    )
    window_dist = to_distribution(raw, "raw", conf.min_share, WINDOW_CATEGORIES, WINDOW_SHARES)
    profile_dist = to_distribution(decayed, "decayed", conf.min_share, PROFILE_CATEGORIES, PROFILE_SHARES)
    start, end = window_bounds(WINDOW, conf.window_days, conf.step_days)
    by_user = Window.partitionBy(S.USER_ID).orderBy(WINDOW)
    if text_vectors is not None:
        activity = activity.join(text_vectors(ev), [S.USER_ID, WINDOW], "left")
    else:
        activity = activity.withColumn(TEXT_VECTOR, F.lit(None).cast("array<float>"))
    return (
        activity.join(window_dist, [S.USER_ID, WINDOW], "left")
        .join(profile_dist, [S.USER_ID, WINDOW], "left")
        .withColumn(WINDOW_START, start)
        .withColumn(WINDOW_END, end)
        .withColumn(WINDOWS_SINCE_PREV, F.col(WINDOW) - F.lag(WINDOW).over(by_user))
        .withColumn(TOP_CATEGORIES, F.slice(PROFILE_CATEGORIES, 1, conf.top_k))
        .withColumn(ENTROPY, entropy_bits(PROFILE_SHARES))
        .select(*PROFILE_COLUMNS)
    )
