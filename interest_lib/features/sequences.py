"""gold.training_sequences: fixed-length model inputs and labels, split by time (no leakage).

One sample per user and cut-off, the cut-off being the end of one of the user's active windows
that is followed by another active window (the label window). Inputs, left-padded with 0:

- the last ``max_events`` events before the cut-off: ``ev_category``, ``ev_item``, ``ev_type``,
  ``ev_interval`` (bucket of the time since the previous event), ``ev_text`` (search/review text);
- the last ``max_windows`` window profiles up to the cut-off, each as its top-K categories and
  shares (``win_category`` / ``win_share``, ``max_windows * top_k`` long, oldest first).

Events that share a timestamp (the items of one basket) are one set: among them the order is a
hash of the event (:func:`~interest_lib.features.windows.same_time_order`), never their category or
item names, so the label of a basket is one of its events drawn by that hash, not its
alphabetically first category.

Labels: ``next_category`` (the first event after the cut-off), ``is_switch`` (that category is
not in the cut-off window's own categories), the label window's distribution (``next_dist_category``
/ ``next_dist_share``, top-K), and ``next_stage`` (stage of the label window's top interest).

Ids are integer indices from ``ref.vocab`` (0 = padding). The split is by the label window, on
window boundaries counted back from the last event: ``test`` = label windows in the last
``test_days``; ``validation`` = those in the ``validation_days`` before; ``train`` = label
windows that end before validation starts. Training labels therefore never overlap the
validation or test periods, and inputs always precede their labels.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window, functions as F

from interest_lib import schema as S
from interest_lib.conf import Config
from interest_lib.features.profiles import PROFILE_CATEGORIES, PROFILE_SHARES, WINDOW_CATEGORIES
from interest_lib.features.stages import STAGE, STAGES
from interest_lib.features.windows import (
    INTEREST, ORIGIN, WINDOW, WINDOW_END, WINDOW_START, interest_key, last_window_ended_col, same_time_order,
    window_index_of,
)
from interest_lib.sequence_contract import FIRST_EVENT_BUCKET, INTERVAL_BUCKETS

VOCAB_KINDS = ("category", "item", "event_type", "text")
SPLITS = ("train", "validation", "test")


def build_vocab(events: DataFrame, level: int) -> DataFrame:
    """ref.vocab: (kind, key, idx) with idx 1.. in key order per kind (0 is padding)."""
    texts = events.filter(F.col(S.TEXT).isNotNull()).select(F.lit("text").alias("kind"), F.col(S.TEXT).alias("key"))
    parts = [
        events.select(F.lit("category").alias("kind"), interest_key(level).alias("key")),
        events.filter(F.col(S.ITEM_ID).isNotNull()).select(F.lit("item").alias("kind"), F.col(S.ITEM_ID).alias("key")),
        texts,
    ]
    keys = parts[0].unionByName(parts[1]).unionByName(parts[2]).distinct()
    types = events.sparkSession.createDataFrame([("event_type", t) for t in S.EVENT_TYPES], "kind string, key string")
    ranked = keys.withColumn("idx", F.row_number().over(Window.partitionBy("kind").orderBy("key")))
    typed = types.withColumn("idx", F.array_position(F.array(*[F.lit(t) for t in S.EVENT_TYPES]), F.col("key")).cast("int"))
    return ranked.withColumn("idx", F.col("idx").cast("int")).unionByName(typed)


def interval_bucket(seconds: Column) -> Column:
    """The bucket of a time gap in seconds (:func:`interest_lib.sequence_contract.interval_bucket_of`;
    null, the user's first event, is :data:`~interest_lib.sequence_contract.FIRST_EVENT_BUCKET`)."""
    expr = F.lit(len(INTERVAL_BUCKETS) + 2)
    for i, bound in reversed(list(enumerate(INTERVAL_BUCKETS))):
        expr = F.when(seconds < bound, F.lit(i + 2)).otherwise(expr)
    return F.when(seconds.isNull(), F.lit(FIRST_EVENT_BUCKET)).otherwise(expr)


def _lookup(df: DataFrame, vocab: DataFrame, kind: str, key: Column, out: str) -> DataFrame:
    v = vocab.filter(F.col("kind") == kind).select(F.col("key").alias(f"_{out}_key"), F.col("idx").alias(out))
    return df.withColumn(f"_{out}_key", key).join(F.broadcast(v) if kind == "event_type" else v,
                                                  f"_{out}_key", "left").drop(f"_{out}_key").fillna({out: 0})


def _field(name: str):
    # A one-argument lambda: Spark's transform() passes the index too to two-argument ones.
    return lambda e: e[name]


def _left_pad(arr: Column, length: int, fill) -> Column:
    return F.concat(F.array_repeat(F.lit(fill), F.greatest(F.lit(0), F.lit(length) - F.size(arr))), arr)


def split_bounds(last_event: dt.datetime, step_days: int, validation_days: int,
                 test_days: int) -> tuple[dt.datetime, dt.datetime]:
    """(validation start, test start): window starts counted back from the last complete window
    (the one ending at or before the last event), so the test period holds the last
    ``test_days`` worth of label windows and never a nearly empty trailing window."""
    last = window_index_of(last_event, step_days) - 1
    test_first = last - max(1, -(-test_days // step_days)) + 1
    val_first = test_first - max(1, -(-validation_days // step_days))
    def start(k: int) -> dt.datetime:
        return ORIGIN + dt.timedelta(days=k * step_days)
    return start(val_first), start(test_first)


def _histories(events: DataFrame, profiles: DataFrame, vocab: DataFrame, conf: Config):
    """What samples are cut from: (profiles with top-K ids, per-user sorted events, per-user
    sorted windows, the one-row category-key -> id map)."""
    k = conf.features.top_k
    # Events sharing a timestamp (a basket) are ordered by a hash, never by a name: see
    # same_time_order. The interval buckets follow the same order as the arrays.
    by_user = Window.partitionBy(S.USER_ID).orderBy(S.EVENT_TIME, "_tie")
    ev = (events.withColumn("_tie", same_time_order())
          .withColumn(INTEREST, interest_key(conf.features.category_level)))
    ev = _lookup(ev, vocab, "category", F.col(INTEREST), "c")
    ev = _lookup(ev, vocab, "item", F.col(S.ITEM_ID), "i")
    ev = _lookup(ev, vocab, "event_type", F.col(S.EVENT_TYPE), "t")
    ev = _lookup(ev, vocab, "text", F.col(S.TEXT), "x")
    ev = ev.withColumn("b", interval_bucket(F.unix_seconds(S.EVENT_TIME) - F.unix_seconds(F.lag(S.EVENT_TIME).over(by_user))))
    user_events = ev.groupBy(S.USER_ID).agg(
        F.array_sort(F.collect_list(F.struct(F.col(S.EVENT_TIME).alias("ts"), "_tie", "c", "i", "t", "b", "x")))
        .alias("_evs"))

    cat_vocab = vocab.filter(F.col("kind") == "category").select(F.col("key").alias(INTEREST), "idx")
    prof = profiles.select(S.USER_ID, WINDOW, WINDOW_START, WINDOW_END, WINDOW_CATEGORIES,
                           F.slice(PROFILE_CATEGORIES, 1, k).alias("_top"), F.slice(PROFILE_SHARES, 1, k).alias("_shares"))
    # Category keys -> indices inside the arrays, via a map built once from the (small) vocabulary.
    cat_map = F.broadcast(cat_vocab.agg(F.map_from_entries(F.collect_list(F.struct(INTEREST, "idx"))).alias("_cmap")))
    prof = prof.crossJoin(cat_map).withColumn(
        "_top_idx", F.transform("_top", lambda c: F.coalesce(F.element_at(F.col("_cmap"), c), F.lit(0))))
    prof = prof.withColumn("_top_idx", _left_pad("_top_idx", k, 0)).withColumn(
        "_shares", _left_pad(F.col("_shares").cast("array<float>"), k, 0.0))
    user_windows = prof.groupBy(S.USER_ID).agg(F.array_sort(F.collect_list(F.struct(
        WINDOW, "_top_idx", "_shares"))).alias("_wins"))
    return prof, user_events, user_windows, cat_map


def _count_past(df: DataFrame) -> DataFrame:
    """Add ``_n_past``: how many of the row's events (``_evs``, sorted by time) lie before its
    ``cutoff``; they are the array's first ``_n_past``, and the next event is at that 0-based
    index. One pass that builds no array: filtering ``_evs`` per row copied every event of the
    user's history into a new array, three times a sample."""
    before = lambda acc, e: acc + F.when(e["ts"] < F.col("cutoff"), F.lit(1)).otherwise(F.lit(0))  # noqa: E731
    return df.withColumn("_n_past", F.aggregate("_evs", F.lit(0), before))


def _inputs(df: DataFrame, conf: Config) -> tuple[DataFrame, list[Column]]:
    """Add this row's history before ``cutoff`` (its last ``max_events`` events, from
    :func:`_count_past`'s ``_n_past``) and up to ``window`` (profiles); return it with the
    model-input columns (left-padded ids and shares) as expressions."""
    n_ev, n_win, k = conf.sequences.max_events, conf.sequences.max_windows, conf.features.top_k
    n_past = F.col("_n_past")
    wins = F.filter("_wins", lambda w: w[WINDOW] <= F.col(WINDOW))
    df = (df.withColumn("_seq", F.slice("_evs", F.greatest(n_past - F.lit(n_ev) + 1, F.lit(1)),
                                        F.least(n_past, F.lit(n_ev))))
          .withColumn("_w", F.slice(wins, F.greatest(F.size(wins) - F.lit(n_win) + 1, F.lit(1)), n_win)))
    ev_cols = {"ev_category": "c", "ev_item": "i", "ev_type": "t", "ev_interval": "b", "ev_text": "x"}
    columns = [_left_pad(F.transform("_seq", _field(f)), n_ev, 0).alias(name) for name, f in ev_cols.items()]
    columns += [
        _left_pad(F.flatten(F.transform("_w", lambda w: w["_top_idx"])), n_win * k, 0).alias("win_category"),
        _left_pad(F.flatten(F.transform("_w", lambda w: w["_shares"])), n_win * k, 0.0).alias("win_share"),
    ]
    return df, columns


def build_sequences(events: DataFrame, profiles: DataFrame, stages: DataFrame, vocab: DataFrame,
                    conf: Config, val_start: dt.datetime, test_start: dt.datetime) -> DataFrame:
    """Training samples (see the module docstring) from sessionized events, profiles and stages."""
    prof, user_events, user_windows, cat_map = _histories(events, profiles, vocab, conf)
    top_stage = stages.join(
        profiles.select(S.USER_ID, WINDOW, F.col(PROFILE_CATEGORIES)[0].alias(INTEREST)), [S.USER_ID, WINDOW, INTEREST])
    stage_idx = F.array_position(F.array(*[F.lit(s) for s in STAGES]), F.col(STAGE)).cast("int")
    top_stage = top_stage.select(S.USER_ID, F.col(WINDOW).alias("_label_window"), stage_idx.alias("next_stage"))

    nxt = Window.partitionBy(S.USER_ID).orderBy(WINDOW)
    cutoffs = (
        prof.withColumn("_label_window", F.lead(WINDOW).over(nxt))
        .withColumn("_label_start", F.lead(WINDOW_START).over(nxt))
        .withColumn("_label_end", F.lead(WINDOW_END).over(nxt))
        .withColumn("next_dist_category", F.lead("_top_idx").over(nxt))
        .withColumn("next_dist_share", F.lead("_shares").over(nxt))
        .filter(F.col("_label_window").isNotNull())
        .select(S.USER_ID, WINDOW, F.col(WINDOW_END).alias("cutoff"), "_label_window", "_label_start", "_label_end",
                F.col(WINDOW_CATEGORIES).alias("_cut_cats"), "next_dist_category", "next_dist_share")
    )
    cut_cat_idx = F.transform("_cut_cats", lambda c: F.coalesce(F.element_at(F.col("_cmap"), c), F.lit(0)))
    split = (
        F.when(F.col("_label_end") <= F.lit(val_start), "train")
        .when(F.col("_label_start") >= F.lit(test_start), "test")
        .when((F.col("_label_start") >= F.lit(val_start)) & (F.col("_label_end") <= F.lit(test_start)), "validation")
    )
    samples = (
        cutoffs.join(user_events, S.USER_ID).join(user_windows, S.USER_ID).crossJoin(cat_map)
        .transform(_count_past)
        .withColumn("_next", F.get("_evs", F.col("_n_past")))
        .filter(F.col("_next").isNotNull())
        .withColumn("split", split).filter(F.col("split").isNotNull())
        .join(top_stage, [S.USER_ID, "_label_window"], "left")
    )
    samples, inputs = _inputs(samples, conf)
    return samples.select(
        S.USER_ID, F.col(WINDOW), "cutoff", "split", *inputs,
        F.col("_next.c").alias("next_category"),
        (~F.array_contains(cut_cat_idx, F.col("_next.c"))).alias("is_switch"),
        "next_dist_category", "next_dist_share",
        F.coalesce(F.col("next_stage"), F.lit(0)).alias("next_stage"),
    )


def _rows_with_inputs(rows: DataFrame, user_events: DataFrame, user_windows: DataFrame, conf: Config) -> DataFrame:
    """``rows`` (``user_id``, ``window``, ``cutoff``, any other columns) with their model inputs as
    columns, the rows of users with no event before their cut-off dropped."""
    keep = rows.columns
    empty = F.array().cast(user_windows.schema["_wins"].dataType)  # a user with no complete window yet
    df = (rows.join(user_events, S.USER_ID).join(user_windows, S.USER_ID, "left")
          .withColumn("_wins", F.coalesce("_wins", empty)).transform(_count_past))
    df, inputs = _inputs(df, conf)
    # "Some event before the cut-off" as the first event's time, not ``_n_past > 0``: Spark pushed
    # that filter, whose lambda reads ``cutoff``, into the events' side of the join, where the plan
    # failed (INTERNAL_ERROR_ATTRIBUTE_NOT_FOUND; Complete Journey's 30,314 target baskets in
    # bench/pipeline_event_protocol.py; a small test frame did not reproduce it).
    return df.filter(F.col("_evs")[0]["ts"] < F.col("cutoff")).select(*keep, *inputs)


def build_scoring_inputs(events: DataFrame, profiles: DataFrame, vocab: DataFrame, conf: Config,
                         as_of: dt.datetime) -> DataFrame:
    """One row per user with history before ``as_of``: the same inputs as a training sample whose
    cut-off is ``as_of`` (the user's last window ending at or before it), without labels.
    Users with no complete window or no event before ``as_of`` are not eligible."""
    prof, user_events, user_windows, _ = _histories(events, profiles, vocab, conf)
    last = prof.filter(F.col(WINDOW_END) <= F.lit(as_of)).groupBy(S.USER_ID).agg(F.max(WINDOW).alias(WINDOW))
    rows = last.withColumn("cutoff", F.lit(as_of).cast("timestamp"))
    return _rows_with_inputs(rows, user_events, user_windows, conf)


def build_inputs_at(events: DataFrame, profiles: DataFrame, vocab: DataFrame, conf: Config,
                    cutoffs: DataFrame) -> DataFrame:
    """Model inputs at any times: for each row of ``cutoffs`` (``user_id``, ``cutoff`` timestamp,
    other columns kept), the inputs a sample cut there holds: the user's last ``max_events``
    events strictly *before* ``cutoff`` (events at that very time, such as the rest of a basket,
    are not seen) and the windows that end at or before it; ``window`` is the last window index
    ending by ``cutoff``, whether or not the user was active in it. Rows of users with no event
    before their cut-off are dropped. The event-level protocol scores the pipeline's migration
    model with it at every target basket's time (bench/pipeline_event_protocol.py)."""
    _, user_events, user_windows, _ = _histories(events, profiles, vocab, conf)
    last = last_window_ended_col("cutoff", conf.features.window_days, conf.features.step_days)
    return _rows_with_inputs(cutoffs.withColumn(WINDOW, last), user_events, user_windows, conf)
