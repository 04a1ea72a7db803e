"""The storage layer's one snapshot reader: files, partition values, row groups and versions of
a real Delta table, and evaluation's numpy read of one split, equal to what the training feed
delivers for it (same rows, same conversions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # noqa: F401  (the feed below needs it; the reader does not)

from interest_lib.storage.arrays import read_arrays
from interest_lib.storage.snapshot import open_snapshot
from interest_lib.training.feed import DeltaArrowFeed, FeedSpec
from tests.unit.test_feed import APPENDS, COLUMNS, N, SPLITS, _build

pytestmark = [pytest.mark.unit, pytest.mark.card_env]  # run again in .venv-card (pyarrow 14, pandas 2.2)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("snapshot") / "training_sequences")


def test_a_snapshot_lists_files_partitions_row_groups_and_versions(table):
    latest, first = open_snapshot(table), open_snapshot(table, version=0)
    assert (latest.version, first.version) == (2, 0)
    assert latest.partition_columns == ["split"] and "split" in latest.schema.names
    assert len(latest.files) == 9 and len(first.files) == 3
    assert {f.partition["split"] for f in latest.files} == set(SPLITS)
    test_files = latest.select({"split": "test"})
    assert len(test_files) == 3 and all("split=test" in f.path for f in test_files)
    units, parquet_schema = latest.row_groups(test_files)
    assert sum(u.rows for u in units) == sum(1 for i in range(N) if SPLITS[i % 4] == "test")
    assert "split" not in parquet_schema.names  # partition values live in the log only
    assert first.read(["window"]).num_rows == APPENDS[0]
    with pytest.raises(ValueError, match="not partitioned by \\['user_id'\\]"):
        latest.select({"user_id": "u001"})


def test_evaluation_reads_a_split_as_the_feed_delivers_it(table):
    columns = [c for c in COLUMNS if c != "user_id"]
    got = read_arrays(table, 2, ["user_id", *columns], {"split": "validation"})
    feed = DeltaArrowFeed(FeedSpec(table, 2, "validation", ["user_id", *columns], batch_size=1000))
    (batch,) = list(feed.batches())
    for column in columns:
        assert got[column].dtype == batch[column].numpy().dtype, column
        np.testing.assert_array_equal(got[column], batch[column].numpy(), err_msg=column)
    assert list(got["user_id"]) == batch["user_id"]


def test_reading_an_unknown_column_or_an_empty_split_names_the_table(table):
    with pytest.raises(ValueError, match="version 2: unknown columns \\['nope'\\]"):
        read_arrays(table, 2, ["nope"], {"split": "train"})
    with pytest.raises(ValueError, match="no rows for \\{'split': 'holdout'\\}"):
        read_arrays(table, 2, ["window"], {"split": "holdout"})
