"""Cold start: a forecast and recommendations for users without a complete window.

The trained models read window profiles; a user whose first events fall in the current, partial
window has none, and before this path was not scored at all. Such a user is scored from what
they touched (a handful of events) and what everyone buys:

    p(c) = own_weight * share of c among the user's events
         + text_weight * softmax_c(cos(user vector, category vector) / temperature + log popularity(c))
         + popularity_weight * recent popularity of c

normalised over the categories (id 0, padding, is never predicted). A category vector is the
mean sentence vector (ref.item_embeddings, the MiniLM text of the items' titles and
descriptions) of its items; the user vector the event-weighted mean of the vectors of the
categories they touched, so categories whose items read alike rank above unrelated ones.
Popularity is the share of events per category in the ``popularity_days`` before the as-of
time. Without item embeddings the text term is left out (and logged).

:func:`cold_start_scores` is numpy only (the bench and the tests call it without Spark);
:func:`cold_start_predictor` builds it from the tables, :func:`cold_start_rows` scores the
users in Spark (``mapInPandas``) into the same columns as the window path, with
``scoring_path = 'cold_start'``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import pandas as pd

#: ``scoring_path`` values of gold.user_interest_scores.
WINDOW_PATH, COLD_START_PATH = "window", "cold_start"


@dataclass
class ColdStart:
    """What scores a cold user: category vectors [C+1, d] (unit length, zero rows for categories
    without text), a popularity distribution [C+1] and the mixing settings."""

    vectors: Optional[np.ndarray]
    popularity: np.ndarray
    own_weight: float = 0.4
    text_weight: float = 0.3
    popularity_weight: float = 0.3
    temperature: float = 0.05

    def scores(self, touched: list) -> np.ndarray:
        """[N, C+1] next-category distributions for N users, ``touched[i]`` the category ids of
        user i's events (repeats count)."""
        return cold_start_scores(touched, self.vectors, self.popularity, self.own_weight, self.text_weight,
                                 self.popularity_weight, self.temperature)


def cold_start_scores(touched: list, vectors: Optional[np.ndarray], popularity: np.ndarray,
                      own_weight: float, text_weight: float, popularity_weight: float,
                      temperature: float) -> np.ndarray:
    """The cold-start mixture of the module docstring, [N, C+1], rows summing to 1.

    Args:
        touched: per user, an int array of category ids (1..C) of their events.
        vectors: [C+1, d] unit category vectors (zero rows: no text), or None (no text term).
        popularity: [C+1] category shares (index 0 ignored).
        own_weight, text_weight, popularity_weight: mixture weights (>= 0, not all 0).
        temperature: softmax temperature of the cosine similarities (> 0).
    """
    n, cols = len(touched), len(popularity)
    own = np.zeros((n, cols))
    for i, cats in enumerate(touched):
        cats = np.asarray(cats, dtype=np.int64)
        cats = cats[(cats > 0) & (cats < cols)]
        if len(cats):
            np.add.at(own[i], cats, 1.0)
    own /= np.maximum(own.sum(1, keepdims=True), 1e-12)
    pop = np.asarray(popularity, dtype=np.float64).copy()
    pop[0] = 0.0
    pop /= max(pop.sum(), 1e-12)
    out = own_weight * own + popularity_weight * pop[None, :]
    if vectors is not None and text_weight > 0:
        has = np.linalg.norm(vectors, axis=1) > 0
        has[0] = False
        user = own @ vectors
        user /= np.maximum(np.linalg.norm(user, axis=1, keepdims=True), 1e-12)
        # The popularity prior times the similarity: text re-ranks what people buy towards what
        # this user touched, rather than promoting obscure categories that merely read alike.
        prior = np.log(pop + 1e-3 / cols)
        logits = np.where(has[None, :], user @ vectors.T / temperature + prior[None, :], -np.inf)
        known = (np.linalg.norm(user, axis=1) > 0) & has.any()
        logits[~known] = 0.0  # no text for this user: no information, not a uniform guess
        text = np.exp(logits - logits.max(1, keepdims=True))
        text = np.where(known[:, None], text / text.sum(1, keepdims=True), 0.0)
        out = out + text_weight * text
    out[:, 0] = 0.0
    return out / np.maximum(out.sum(1, keepdims=True), 1e-12)


def category_vectors(keys: np.ndarray, item_categories: pd.Series, item_vectors: np.ndarray) -> np.ndarray:
    """[C+1, d] unit vectors: the mean item vector per category key (``keys``: id -> key,
    ``item_categories``: each item's category key, aligned with ``item_vectors`` rows)."""
    index = {k: i for i, k in enumerate(keys) if i > 0 and k}
    ids = item_categories.map(index).fillna(0).to_numpy(dtype=np.int64)
    sums = np.zeros((len(keys), item_vectors.shape[1]))
    np.add.at(sums, ids, item_vectors)
    sums[0] = 0.0
    norm = np.linalg.norm(sums, axis=1, keepdims=True)
    return np.where(norm > 0, sums / np.maximum(norm, 1e-12), 0.0)


# --- Spark -------------------------------------------------------------------------------------

def cold_start_predictor(tables, conf, keys: np.ndarray, as_of: dt.datetime) -> ColdStart:
    """The :class:`ColdStart` of a scoring run: category vectors from ref.items and
    ref.item_embeddings (None when absent), popularity over the ``score.cold_start_popularity_days``
    before ``as_of`` in silver.events_sessionized (all earlier events when that window is empty).
    Collects one row per category to the driver (vectors are summed per category in Spark)."""
    from pyspark.sql import functions as F

    from interest_lib import schema as S
    from interest_lib.features.windows import interest_key
    from interest_lib.logs import get_logger
    from interest_lib.storage.catalog import REF_ITEM_EMBEDDINGS, REF_ITEMS, SILVER_EVENTS_SESSIONIZED

    s = conf.score
    index = {k: i for i, k in enumerate(keys) if i > 0 and k}
    level = conf.features.category_level
    events = tables.read(SILVER_EVENTS_SESSIONIZED).filter(F.col(S.EVENT_TIME) < F.lit(as_of))
    recent = events.filter(F.col(S.EVENT_TIME) >= F.lit(as_of - dt.timedelta(days=s.cold_start_popularity_days)))
    popularity = np.zeros(len(keys))
    for frame in (recent, events):
        for r in frame.groupBy(interest_key(level).alias("k")).count().collect():
            if r["k"] in index:
                popularity[index[r["k"]]] += r["count"]
        if popularity.sum() > 0:
            break
    vectors = None
    if tables.exists(REF_ITEMS) and tables.exists(REF_ITEM_EMBEDDINGS):
        joined = (tables.read(REF_ITEMS).select(S.ITEM_ID, interest_key(level).alias("k"))
                  .join(tables.read(REF_ITEM_EMBEDDINGS).select(S.ITEM_ID, "embedding"), S.ITEM_ID))
        first = joined.select(F.size("embedding").alias("d")).first()
        if first is not None:
            # Summed per category in Spark: one row per category reaches the driver, not one per item.
            sums = joined.groupBy("k").agg(F.array(*[F.sum(F.col("embedding")[i]) for i in range(first["d"])]).alias("v"))
            rows = sums.collect()
            vectors = category_vectors(keys, pd.Series([r["k"] for r in rows]),
                                       np.asarray([r["v"] for r in rows], dtype=np.float64))
    if vectors is None:
        get_logger(__name__).warning("cold start: no item embeddings (ref.item_embeddings): scoring new users "
                                     "from their own categories and popularity only")
    return ColdStart(vectors=vectors, popularity=popularity, own_weight=s.cold_start_own_weight,
                     text_weight=s.cold_start_text_weight, popularity_weight=s.cold_start_popularity_weight,
                     temperature=s.cold_start_temperature)


def cold_start_users(events, window_users, conf, as_of: dt.datetime):
    """Users with at least one event before ``as_of`` who are not in ``window_users`` (the window
    path's inputs): ``user_id``, ``window`` (of their last event), ``touched`` (their events'
    category keys, oldest first, at most ``score.cold_start_max_events``, the latest kept)."""
    from pyspark.sql import functions as F

    from interest_lib import schema as S
    from interest_lib.features.windows import interest_key, same_time_order, window_index_col

    f, s = conf.features, conf.score
    past = events.filter(F.col(S.EVENT_TIME) < F.lit(as_of)).join(window_users.select(S.USER_ID), S.USER_ID, "left_anti")
    grouped = past.groupBy(S.USER_ID).agg(
        F.array_sort(F.collect_list(F.struct(F.col(S.EVENT_TIME).alias("ts"), same_time_order().alias("_tie"),
                                            interest_key(f.category_level).alias("k")))).alias("_e"),
        F.max(S.EVENT_TIME).alias("_last"))
    grouped = grouped.withColumn("window", window_index_col("_last", f.step_days).cast("bigint"))
    return grouped.select(S.USER_ID, "window",
                          F.transform(F.slice("_e", F.greatest(F.size("_e") - F.lit(s.cold_start_max_events) + 1, F.lit(1)),
                                              F.lit(s.cold_start_max_events)),
                                      lambda e: e["k"]).alias("touched"))


def cold_start_partitions(model_broadcast, keys: np.ndarray, top_k: int, forecast_k: int, n_recs: int,
                          explore_share: float):
    """The ``mapInPandas`` function of the cold-start path: (user_id, window, touched) batches ->
    rows of the scoring UDF's schema, ``scoring_path`` = cold_start."""
    from interest_lib.metrics import top_k as top_entries
    from interest_lib.scoring.recommend import EXPLOIT, recommend

    index = {k: i for i, k in enumerate(keys) if i > 0 and k}

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model: ColdStart = model_broadcast.value
        for pdf in batches:
            touched = [np.array([index.get(k, 0) for k in ks], dtype=np.int64) for ks in pdf["touched"]]
            p = model.scores(touched)
            own = np.zeros_like(p)
            for i, cats in enumerate(touched):
                np.add.at(own[i], cats[cats > 0], 1.0)
            own /= np.maximum(own.sum(1, keepdims=True), 1e-12)
            next_idx, next_p = top_entries(p, top_k)
            fc_idx, fc_p = top_entries(p, forecast_k)
            rec_idx, rec_score, rec_reason = recommend(own, p, p, n_recs, explore_share)
            why, rec_why = [], []
            for i, cats in enumerate(touched):
                seen = list(dict.fromkeys(keys[c] for c in cats if c > 0))
                why.append(f"new user: {len(pdf['touched'].iloc[i])} event(s) so far"
                           + (f" in {', '.join(seen[:3])}" if seen else "")
                           + "; ranked by text similarity to them and what is popular now")
                rec_why.append([f"you looked at {keys[c]}" if own[i, c] > 0 else
                                ("close to what you looked at" if r == EXPLOIT else "popular or related to what you looked at")
                                for c, r in zip(rec_idx[i], rec_reason[i])])
            yield pd.DataFrame({
                "user_id": pdf["user_id"], "window": pdf["window"],
                "next_categories": list(keys[next_idx]), "next_probs": list(next_p.astype(np.float32)),
                "p_switch": (1.0 - (p * (own > 0)).sum(1)).astype(np.float32),
                "forecast_categories": list(keys[fc_idx]), "forecast_shares": list(fc_p.astype(np.float32)),
                "forecast_stage": None,
                "rec_categories": list(keys[rec_idx]), "rec_scores": list(rec_score),
                "rec_reasons": list(rec_reason.astype(object)),
                "explanation": why, "rec_explanations": rec_why, "scoring_path": COLD_START_PATH,
            })
    return run
