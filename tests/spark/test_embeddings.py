"""Item and event-text embeddings in Spark: real model, real Delta tables, incremental reruns."""

import numpy as np
import pytest

from interest_lib import schema as S
from interest_lib.features.embeddings import (
    BUNDLED_MODEL_NAME, ITEM_EMBEDDINGS_SCHEMA, TEXT_EMBEDDINGS_SCHEMA, get_encoder,
    run_item_embeddings, run_text_embeddings, text_hash,
)
from interest_lib.storage.catalog import REF_ITEM_EMBEDDINGS, REF_ITEMS, REF_TEXT_EMBEDDINGS
from tests.helpers import read_with_delta_rs

pytestmark = [pytest.mark.spark]

ITEMS = [
    ("i1", "Wireless noise cancelling headphones - Sonar 3", "Long battery life.", "c1", "e/a/h", 150.0),
    ("i2", "Bluetooth speaker - Voltix 1", None, "c2", "e/a/s", 80.0),
    ("i3", "Compact stroller - Bloom 2.", "Foldable buggy by Bloom.", "c3", "b/s/c", 220.0),
    ("i4", "Trail shoes - Stride 5", "", "c4", "s/r/s", 110.0),
    ("i5", None, None, "c5", "h/k/c", 60.0),
    ("i6", "  Yoga mat  ", "Soft yoga mat.", "c6", "s/f/y", 30.0),
]
# What item_text builds from each row (trimmed, trailing dots of the title dropped).
EXPECTED_TEXT = {
    "i1": "Wireless noise cancelling headphones - Sonar 3. Long battery life.",
    "i2": "Bluetooth speaker - Voltix 1",
    "i3": "Compact stroller - Bloom 2. Foldable buggy by Bloom.",
    "i4": "Trail shoes - Stride 5",
    "i5": "",
    "i6": "Yoga mat. Soft yoga mat.",
}


def _write_items(spark, tables, rows, mode="append"):
    tables.write(spark.createDataFrame(rows, S.ITEM_SCHEMA), REF_ITEMS, mode=mode)


def _columns(schema):
    # Parquet reads every column back as nullable; names and types are what must match.
    return [(f.name, f.dataType.simpleString()) for f in schema.fields]


def _stored(tables):
    return {r.item_id: r for r in tables.read(REF_ITEM_EMBEDDINGS).collect()}


def test_item_embeddings_are_incremental_and_match_the_encoder(spark, tmp_conf, tables):
    _write_items(spark, tables, ITEMS)
    first = run_item_embeddings(spark, tmp_conf, tables)
    assert first["items_total"] == 6 and first["items_embedded"] == 6
    assert first["items_unchanged"] == 0 and first["empty_texts"] == 1
    assert _columns(tables.read(REF_ITEM_EMBEDDINGS).schema) == _columns(ITEM_EMBEDDINGS_SCHEMA)

    stored = _stored(tables)
    encoder = get_encoder(tmp_conf.embeddings)
    ids = sorted(EXPECTED_TEXT)
    expected = encoder.encode([EXPECTED_TEXT[i] for i in ids])
    got = np.array([stored[i].embedding for i in ids], dtype=np.float32)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert not got[ids.index("i5")].any()  # no text: the zero vector
    assert {(r.model, r.dim) for r in stored.values()} == {(BUNDLED_MODEL_NAME, 384)}
    assert all(stored[i].text_hash == text_hash(EXPECTED_TEXT[i], tmp_conf.embeddings) for i in ids)

    version = tables.version(REF_ITEM_EMBEDDINGS)
    second = run_item_embeddings(spark, tmp_conf, tables)
    assert second["items_embedded"] == 0 and second["items_unchanged"] == 6
    assert tables.version(REF_ITEM_EMBEDDINGS) == version  # nothing to write, no commit

    changed = [(r[0], "Baby crib - Nestle 1", *r[2:]) if r[0] == "i2" else r for r in ITEMS]
    _write_items(spark, tables, changed, mode="overwrite")
    third = run_item_embeddings(spark, tmp_conf, tables)
    assert third["items_embedded"] == 1 and third["items_unchanged"] == 5
    after = _stored(tables)
    assert len(after) == 6
    np.testing.assert_allclose(after["i2"].embedding, encoder.encode(["Baby crib - Nestle 1"])[0],
                               atol=1e-4)
    assert not np.allclose(after["i2"].embedding, stored["i2"].embedding, atol=1e-2)
    assert after["i1"].embedded_at == stored["i1"].embedded_at  # untouched rows keep their time
    assert sorted(read_with_delta_rs(tables.path(REF_ITEM_EMBEDDINGS))["item_id"].to_pylist()) == ids


@pytest.mark.card_env
def test_items_sharing_a_text_are_encoded_once_and_all_stored(spark, tmp_conf, tables):
    twins = [("t1", "Baked bread", "GROCERY > BREAD", "c1", "g/b/b", 2.0),
             ("t2", "Baked bread", "GROCERY > BREAD", "c1", "g/b/b", 3.0),
             ("t3", "Baked bread.", "GROCERY > BREAD", "c1", "g/b/b", 4.0),  # same text once trimmed
             ("t4", "Milk", None, "c2", "g/d/m", 1.0)]
    _write_items(spark, tables, twins)
    report = run_item_embeddings(spark, tmp_conf, tables)
    assert report["items_embedded"] == 4 and report["texts_embedded"] == 2
    stored = _stored(tables)
    assert sorted(stored) == ["t1", "t2", "t3", "t4"]
    expected = get_encoder(tmp_conf.embeddings).encode(["Baked bread. GROCERY > BREAD", "Milk"])
    for item in ("t1", "t2", "t3"):
        np.testing.assert_allclose(stored[item].embedding, expected[0], atol=1e-4)
    np.testing.assert_allclose(stored["t4"].embedding, expected[1], atol=1e-4)


def test_text_embeddings_embed_distinct_non_empty_texts_once(spark, tmp_conf, tables):
    long_review = "Great stroller, folds in one hand. " * 100  # 3,500 characters
    texts = ["running shoes", "running shoes", None, "", "   ", "baby monitor", long_review,
             "baby monitor", None]
    events = spark.createDataFrame(
        [(f"e{i}", t) for i, t in enumerate(texts)], "event_id string, text string")
    tables.write(events, "test.events")
    first = run_text_embeddings(spark, tmp_conf, tables, events_table="test.events")
    assert first["texts_total"] == 3 and first["texts_embedded"] == 3
    assert first["long_texts"] == 1

    table = tables.read(REF_TEXT_EMBEDDINGS)
    assert _columns(table.schema) == _columns(TEXT_EMBEDDINGS_SCHEMA)
    rows = {r.text: r for r in table.collect()}
    assert sorted(rows) == sorted(["running shoes", "baby monitor", long_review])
    encoder = get_encoder(tmp_conf.embeddings)
    for text, row in rows.items():
        assert row.text_hash == text_hash(text, tmp_conf.embeddings)
        np.testing.assert_allclose(row.embedding, encoder.encode([text])[0], atol=1e-4)

    more = events.union(spark.createDataFrame([("e99", "bike light")], "event_id string, text string"))
    tables.write(more, "test.events", mode="overwrite")
    second = run_text_embeddings(spark, tmp_conf, tables, events_table="test.events")
    assert second["texts_total"] == 4 and second["texts_embedded"] == 1
    assert second["texts_unchanged"] == 3 and second["long_texts"] == 0
    assert tables.read(REF_TEXT_EMBEDDINGS).count() == 4
