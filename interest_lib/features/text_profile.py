"""The text side of an interest profile: per user and window, the weighted mean of the sentence
vectors of the items the user touched and of the texts they wrote (searches, reviews).

Weights are the event-type weights of the profile, so a purchased item counts six times a viewed
one. The (few) distinct vectors of a window are collected in Spark and averaged with numpy in a
pandas UDF (SQL higher-order functions over 384-wide arrays were ~20x slower), then
L2-normalised; a window whose items and texts have no embedding gets no vector (null).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, functions as F

from interest_lib import schema as S
from interest_lib.conf import EmbeddingsConf
from interest_lib.features.embeddings import EMBEDDING, TEXT_HASH, text_hash_col
from interest_lib.features.profiles import TEXT_VECTOR, WEIGHT
from interest_lib.features.windows import WINDOW


def window_text_vectors(weighted_events: DataFrame, item_embeddings: DataFrame,
                        text_embeddings: DataFrame, conf: EmbeddingsConf) -> DataFrame:
    """(user_id, window, text_vector) from events with ``window`` and ``weight`` columns.

    Args:
        weighted_events: output of :func:`profiles.weighted_window_events`.
        item_embeddings: ref.item_embeddings (item_id, embedding).
        text_embeddings: ref.text_embeddings (text_hash, embedding).
        conf: embeddings configuration (the text hash depends on the model).
    """
    keys = [S.USER_ID, WINDOW]
    items = (
        weighted_events.filter(F.col(S.ITEM_ID).isNotNull())
        .groupBy(*keys, S.ITEM_ID).agg(F.sum(WEIGHT).alias("_w"))
        .join(item_embeddings.select(S.ITEM_ID, EMBEDDING), S.ITEM_ID)
        .select(*keys, "_w", EMBEDDING)
    )
    texts = (
        weighted_events.filter(F.col(S.TEXT).isNotNull() & (F.trim(S.TEXT) != ""))
        .withColumn(TEXT_HASH, text_hash_col(S.TEXT, conf))
        .groupBy(*keys, TEXT_HASH).agg(F.sum(WEIGHT).alias("_w"))
        .join(text_embeddings.select(TEXT_HASH, EMBEDDING), TEXT_HASH)
        .select(*keys, "_w", EMBEDDING)
    )
    grouped = items.unionByName(texts).groupBy(*keys).agg(
        F.collect_list("_w").alias("_ws"), F.collect_list(EMBEDDING).alias("_es"))
    return grouped.select(*keys, weighted_unit_mean(F.col("_ws"), F.col("_es")).alias(TEXT_VECTOR))


@F.pandas_udf("array<float>")
def weighted_unit_mean(weights: pd.Series, vectors: pd.Series) -> pd.Series:
    """Row-wise L2-normalised weighted mean of a list of vectors (numpy; Arrow batches)."""
    out = []
    for w, vs in zip(weights, vectors):
        total = np.asarray(w, dtype=np.float64) @ np.stack(vs).astype(np.float64)
        norm = float(np.linalg.norm(total))
        out.append((total / norm).astype(np.float32) if norm > 0 else None)
    return pd.Series(out)
