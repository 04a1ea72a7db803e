"""The text encoder on the real bundled all-MiniLM-L6-v2 model (no Spark, no mocks)."""

import numpy as np
import pytest

from interest_lib.conf import EmbeddingsConf
from interest_lib.features.embeddings import (
    BUNDLED_MODEL_NAME, MIN_TEXTS_PER_TASK, EmbeddingModelError, TextEncoder, embedding_tasks, get_encoder,
    model_signature, text_hash,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def encoder():
    return get_encoder(EmbeddingsConf())


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_similar_products_are_closer_than_unrelated_ones(encoder):
    head, headset, stroller = encoder.encode(
        ["wireless noise cancelling headphones", "bluetooth headset", "baby stroller"])
    assert _cos(head, headset) > 0.35
    assert _cos(head, headset) > _cos(head, stroller) + 0.2


def test_vectors_are_unit_norm_float32_of_dim_384(encoder):
    vectors = encoder.encode(["running shoes", "a crib for a newborn", "4K gaming monitor"])
    assert encoder.dim == 384 and encoder.name == BUNDLED_MODEL_NAME
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_and_missing_texts_are_zero_vectors(encoder):
    vectors = encoder.encode([None, "", "   ", "yoga mat", float("nan")])
    assert vectors.shape == (5, 384)
    assert not vectors[[0, 1, 2, 4]].any()
    assert np.linalg.norm(vectors[3]) == pytest.approx(1.0, abs=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_very_long_text_encodes(encoder):
    text = ("This stroller folds in one hand and fits any car boot. " * 400)[:20000]
    assert len(text) == 20000
    vector = encoder.encode([text])[0]
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    # Cutting characters before tokenisation does not change what the model sees.
    np.testing.assert_allclose(vector, encoder.encode([text[:3000]])[0], atol=1e-6)


def test_batched_equals_one_by_one(encoder):
    texts = ["bike light", None, "noise cancelling headphones for long flights, two-year warranty",
             "crib", "", "Perfect gift, the dutch oven was a hit!", "e-bike"] * 3
    batched = encoder.encode(texts, batch_size=4)
    single = np.stack([encoder.encode([t])[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_get_encoder_is_cached_per_process(encoder):
    assert get_encoder(EmbeddingsConf()) is encoder
    assert get_encoder(EmbeddingsConf(batch_size=8)) is encoder  # batch size is per call


def test_hash_depends_on_model_signature_and_text():
    conf = EmbeddingsConf()
    assert text_hash("crib", conf) == text_hash("crib", EmbeddingsConf())
    assert text_hash("crib", conf) != text_hash("cribs", conf)
    assert text_hash("crib", conf) != text_hash("crib", EmbeddingsConf(max_length=256))
    assert model_signature(conf).startswith(BUNDLED_MODEL_NAME)


def test_unavailable_model_is_a_clear_error():
    with pytest.raises(EmbeddingModelError, match=r"'nobody/no-such-model'.*never downloaded"):
        TextEncoder(EmbeddingsConf(model="nobody/no-such-model"))


def test_cuda_without_cuda_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(EmbeddingModelError, match="CUDA is not available"):
        TextEncoder(EmbeddingsConf(device="cuda"))


@pytest.mark.parametrize("rows, parallelism, tasks", [
    (0, 8, 1), (380, 2, 1),                          # a small store's items: one model load, not two
    (MIN_TEXTS_PER_TASK, 8, 1), (MIN_TEXTS_PER_TASK + 1, 8, 2),
    (5_000, 8, 3), (92_348, 8, 8), (92_348, 2, 2),   # Complete Journey's items: every core busy
])
def test_embedding_tasks_keep_every_core_busy_but_never_below_the_texts_a_model_load_is_worth(rows, parallelism, tasks):
    assert embedding_tasks(rows, parallelism, batch_size=64) == tasks
