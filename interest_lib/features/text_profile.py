"""The text side of an interest profile: per user and window, the weighted mean of the sentence
vectors of the items the user touched and of the texts they wrote (searches, reviews).

Weights are the event-type weights of the profile, so a purchased item counts six times a viewed
one. Computed in SQL (``aggregate`` + ``zip_with`` over the window's few distinct vectors), then
L2-normalised; a window whose items and texts have no embedding gets no vector (null).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, functions as F

from interest_lib import schema as S
from interest_lib.conf import EmbeddingsConf
from interest_lib.features.embeddings import EMBEDDING, TEXT_HASH, text_hash_col
from interest_lib.features.profiles import TEXT_VECTOR, WEIGHT
from interest_lib.features.windows import WINDOW


def window_text_vectors(weighted_events: DataFrame, item_embeddings: DataFrame,
                        text_embeddings: DataFrame, conf: EmbeddingsConf, dim: int) -> DataFrame:
    """(user_id, window, text_vector) from events with ``window`` and ``weight`` columns.

    Args:
        weighted_events: output of :func:`profiles.weighted_window_events`.
        item_embeddings: ref.item_embeddings (item_id, embedding).
        text_embeddings: ref.text_embeddings (text_hash, embedding).
        conf: embeddings configuration (the text hash depends on the model).
        dim: embedding size.
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
    summed = items.unionByName(texts).groupBy(*keys).agg(
        F.aggregate(
            F.collect_list(F.struct("_w", EMBEDDING)),
            F.array_repeat(F.lit(0.0), dim),
            lambda acc, x: F.zip_with(acc, x[EMBEDDING], lambda a, b: a + x["_w"] * b),
        ).alias("_sum")
    )
    norm = F.sqrt(F.aggregate("_sum", F.lit(0.0), lambda acc, v: acc + v * v))
    return summed.select(
        *keys,
        F.when(norm > 0, F.transform("_sum", lambda v: (v / norm).cast("float"))).alias(TEXT_VECTOR),
    )
