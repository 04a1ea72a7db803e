"""Evolution stage of each (user, category) interest, from the trajectory of its profile share.

For each user, every category that ever reached ``active_share`` in the user's profile is
followed over the user's active windows (share 0 where absent). At window k, over the last
``lookback_windows`` windows L:

- ``share``: the category's profile share at k;
- ``trend``: (share_k - share_{k-L+1}) / (L - 1), the mean change per window;
- ``persistence``: the fraction of the last L windows in which it was active (share >= a);
- ``age``: windows since it first became active.

Rules (first match wins), with a = ``active_share`` and t = ``trend_threshold``:

1. share < a and it was active within the last L windows   -> ``fading``
2. share < a                                                -> no row (not an interest now)
3. age == 0 (active for the first time)                     -> ``initial``
4. trend <= -t                                              -> ``fading``
5. trend >= t or persistence < (L - 1) / L                  -> ``developing``
6. otherwise (active, flat, persistent)                     -> ``stable``
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window, functions as F

from interest_lib import schema as S
from interest_lib.conf import StagesConf
from interest_lib.features.profiles import PROFILE_CATEGORIES, PROFILE_SHARES
from interest_lib.features.windows import INTEREST, WINDOW, WINDOW_START

SHARE = "share"
TREND = "trend"
PERSISTENCE = "persistence"
AGE = "age"
STAGE = "stage"
STAGES = ("initial", "developing", "stable", "fading")

STAGE_COLUMNS = [S.USER_ID, WINDOW, WINDOW_START, INTEREST, SHARE, TREND, PERSISTENCE, AGE, STAGE]


def interest_stages(profiles: DataFrame, conf: StagesConf) -> DataFrame:
    """silver.user_interest_windows -> silver.interest_stages (see the module docstring)."""
    lookback = max(2, conf.lookback_windows)
    a = conf.active_share
    shares = profiles.select(
        S.USER_ID, WINDOW, WINDOW_START,
        F.explode(F.arrays_zip(F.col(PROFILE_CATEGORIES).alias(INTEREST), F.col(PROFILE_SHARES).alias(SHARE))).alias("z"),
    ).select(S.USER_ID, WINDOW, WINDOW_START, F.col(f"z.{INTEREST}").alias(INTEREST), F.col(f"z.{SHARE}").alias(SHARE))
    followed = shares.filter(F.col(SHARE) >= a).groupBy(S.USER_ID, INTEREST).agg(
        F.min(WINDOW).alias("_first_active"))
    # Dense series per (user, followed category) over the user's windows from first activity on.
    series = (
        profiles.select(S.USER_ID, WINDOW, WINDOW_START)
        .join(followed, S.USER_ID)
        .filter(F.col(WINDOW) >= F.col("_first_active"))
        .join(shares, [S.USER_ID, WINDOW, WINDOW_START, INTEREST], "left")
        .fillna({SHARE: 0.0})
    )
    ordered = Window.partitionBy(S.USER_ID, INTEREST).orderBy(WINDOW)
    last_l = ordered.rowsBetween(-(lookback - 1), 0)
    active = (F.col(SHARE) >= a).cast("double")
    with_features = (
        series.withColumn("_first_in_frame", F.first(SHARE).over(last_l))
        .withColumn("_n_in_frame", F.count(F.lit(1)).over(last_l))
        .withColumn(TREND, F.when(F.col("_n_in_frame") > 1,
                                  (F.col(SHARE) - F.col("_first_in_frame")) / (F.col("_n_in_frame") - 1))
                    .otherwise(F.lit(0.0)))
        .withColumn(PERSISTENCE, F.sum(active).over(last_l) / F.lit(float(lookback)))
        .withColumn("_recently_active", F.max(active).over(ordered.rowsBetween(-(lookback - 1), -1)))
        .withColumn(AGE, F.row_number().over(ordered) - 1)
    )
    stage = (
        F.when((F.col(SHARE) < a) & (F.col("_recently_active") == 1), "fading")
        .when(F.col(SHARE) < a, F.lit(None))
        .when(F.col(AGE) == 0, "initial")
        .when(F.col(TREND) <= -conf.trend_threshold, "fading")
        .when((F.col(TREND) >= conf.trend_threshold)
              | (F.col(PERSISTENCE) < (lookback - 1) / lookback), "developing")
        .otherwise("stable")
    )
    return (
        with_features.withColumn(STAGE, stage)
        .filter(F.col(STAGE).isNotNull())
        .withColumn(AGE, F.col(AGE).cast("long"))
        .select(*STAGE_COLUMNS)
    )
