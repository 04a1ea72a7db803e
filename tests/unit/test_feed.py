"""DeltaArrowFeed on a small real Delta table: exactly-once delivery, equal DDP steps, shuffling,
split filtering, version pinning, tensor types and clear errors."""

from collections import Counter
from datetime import datetime, timedelta, timezone

import deltalake
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from interest_lib.training.feed import DeltaArrowFeed, FeedSpec, make_feed

pytestmark = [pytest.mark.unit, pytest.mark.card_env]  # run again in .venv-card (pyarrow 14, pandas 2.2)

SPLITS = ("train", "train", "validation", "test")  # split of row i is SPLITS[i % 4]
APPENDS = (37, 52, 23)  # rows per commit: versions 0, 1, 2; uneven so row groups differ in size
N = sum(APPENDS)
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
SCHEMA = pa.schema([
    ("user_id", pa.string()), ("window", pa.int64()), ("cutoff", pa.timestamp("us", tz="UTC")),
    ("split", pa.string()), ("ev_item", pa.list_(pa.int32())),
    ("win_share", pa.list_(pa.float64())),
    ("next_dist_category", pa.list_(pa.int32())), ("next_category", pa.int32()),
    ("is_switch", pa.bool_()),
])
COLUMNS = [f.name for f in SCHEMA if f.name != "split"]


def _rows(ids, split=None):
    """Rows with known content; every 5th has nulls (a list, a list element, an int)."""
    return pa.table({
        "user_id": [f"u{i:03d}" for i in ids],
        "window": list(ids),
        "cutoff": [START + timedelta(days=i) for i in ids],
        "split": [split or SPLITS[i % 4] for i in ids],
        "ev_item": [[i, i + 1, i + 2] for i in ids],
        "win_share": [[None if i % 5 == 0 else i / 2, 0.5] for i in ids],
        "next_dist_category": [None if i % 5 == 0 else [i, 7] for i in ids],
        "next_category": [None if i % 5 == 0 else i for i in ids],
        "is_switch": [i % 3 == 0 for i in ids],
    }, schema=SCHEMA)


def _build(path):
    """Versions 0..2 of a table partitioned by split, several row groups per file."""
    props = deltalake.WriterProperties(max_row_group_size=4)
    start = 0
    for n in APPENDS:
        deltalake.write_deltalake(str(path), _rows(range(start, start + n)), mode="append",
                                  partition_by=["split"], writer_properties=props)
        start += n
    files = list(path.glob("split=*/*.parquet"))
    assert len(files) == 9 and all(pq.ParquetFile(f).metadata.num_row_groups > 1 for f in files)
    return str(path)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("feed") / "training_sequences")


def _ids(split):
    return {f"u{i:03d}" for i in range(N) if not split or SPLITS[i % 4] == split}


def _feed(path, split="train", columns=("user_id",), version=2, **kw):
    return DeltaArrowFeed(FeedSpec(path, version, split, list(columns), **kw))


def test_world_size_one_delivers_every_row_once_with_a_short_last_batch(table):
    feed = _feed(table, split="", batch_size=10)
    batches = list(feed.batches())
    assert feed.num_rows() == N and len(batches) == feed.steps_per_epoch(1) == -(-N // 10)
    assert N % 10 and [len(b["user_id"]) for b in batches] == [10] * (N // 10) + [N % 10]
    delivered = Counter(u for b in batches for u in b["user_id"])
    assert set(delivered) == _ids("") and set(delivered.values()) == {1}


@pytest.mark.parametrize("shuffle_buffer", [0, 10])
@pytest.mark.parametrize("world_size", [2, 3])
def test_drop_last_gives_every_rank_the_same_steps_in_every_epoch(table, world_size,
                                                                  shuffle_buffer):
    feed = _feed(table, batch_size=4, shuffle_buffer=shuffle_buffer, seed=3, drop_last=True)
    steps = feed.steps_per_epoch(world_size)
    assert steps > 0
    for epoch in range(3):
        seen = []
        for rank in range(world_size):
            batches = list(feed.batches(rank, world_size, epoch))
            assert len(batches) == steps and all(len(b["user_id"]) == 4 for b in batches)
            seen += [u for b in batches for u in b["user_id"]]
        assert len(seen) == len(set(seen)) and set(seen) <= _ids("train")


def test_shuffle_changes_order_between_epochs_but_not_the_rows(table):
    feed = _feed(table, batch_size=5, shuffle_buffer=16, seed=1)
    order = {e: [u for b in feed.batches(epoch=e) for u in b["user_id"]] for e in (0, 1)}
    assert order[0] != order[1] and sorted(order[0]) == sorted(order[1]) == sorted(_ids("train"))
    assert [u for b in feed.batches(epoch=0) for u in b["user_id"]] == order[0]  # deterministic
    unshuffled = [u for b in _feed(table, batch_size=5).batches() for u in b["user_id"]]
    assert order[0] != unshuffled


@pytest.mark.parametrize("split", ["train", "validation", "test", ""])
def test_split_filtering(table, split):
    feed = _feed(table, split=split, batch_size=64)
    assert {u for b in feed.batches() for u in b["user_id"]} == _ids(split)
    assert feed.num_rows() == len(_ids(split))


def test_pinned_version_ignores_later_commits(tmp_path):
    path = _build(tmp_path / "t")
    deltalake.write_deltalake(path, _rows([999], split="train"), mode="append",
                              partition_by=["split"])
    users = {v: {u for b in _feed(path, version=v).batches() for u in b["user_id"]}
             for v in (0, 2, 3)}
    assert "u999" not in users[2] and users[3] == users[2] | {"u999"}
    assert users[0] == {f"u{i:03d}" for i in range(APPENDS[0]) if SPLITS[i % 4] == "train"}


def test_tensor_types_shapes_and_nulls(table):
    batch = next(_feed(table, split="", columns=COLUMNS, batch_size=N).batches())
    assert len(batch["user_id"]) == N and isinstance(batch["user_id"][0], str)
    expected = {"window": (torch.int64, (N,)), "cutoff": (torch.int64, (N,)),
                "ev_item": (torch.int64, (N, 3)), "win_share": (torch.float32, (N, 2)),
                "next_dist_category": (torch.int64, (N, 2)), "next_category": (torch.int64, (N,)),
                "is_switch": (torch.bool, (N,))}
    assert {c: (batch[c].dtype, tuple(batch[c].shape)) for c in expected} == expected
    row = {c: batch[c][batch["user_id"].index("u010")] for c in COLUMNS}  # a row with nulls
    assert row["window"] == 10 and row["ev_item"].tolist() == [10, 11, 12]
    assert row["cutoff"] == int((START + timedelta(days=10)).timestamp()) * 1_000_000
    assert row["win_share"].tolist() == [0.0, 0.5] and row["next_dist_category"].tolist() == [0, 0]
    assert row["next_category"] == 0 and bool(row["is_switch"]) is False
    row = {c: batch[c][batch["user_id"].index("u012")] for c in COLUMNS}
    assert row["win_share"].tolist() == [6.0, 0.5] and row["next_dist_category"].tolist() == [12, 7]
    assert row["next_category"] == 12 and bool(row["is_switch"]) is True


def test_dataset_wraps_batches_for_a_dataloader(table):
    feed = _feed(table, batch_size=7, shuffle_buffer=8)
    loader = torch.utils.data.DataLoader(feed.dataset(epoch=2), batch_size=None)
    loaded = [b["user_id"] for b in loader]
    assert loaded == [b["user_id"] for b in feed.batches(epoch=2)]


@pytest.mark.parametrize("kwargs, message", [
    ({"columns": ["user_id", "nope"]}, "unknown columns \\['nope'\\]"),
    ({"columns": ["split"]}, "unknown columns \\['split'\\]"),  # partition column: only in the log
    ({"split": "holdout"}, "no rows for split 'holdout'"),
])
def test_clear_errors_name_the_table_and_version(table, kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        _feed(table, **kwargs)
    assert f"{table} version 2" in str(error.value)


def test_make_feed_by_name(table):
    assert isinstance(make_feed("delta", FeedSpec(table, 2, "test", ["user_id"])), DeltaArrowFeed)
    with pytest.raises(ValueError, match="'delta'"):
        make_feed("nope", FeedSpec(table, 2, "test", ["user_id"]))


def test_a_single_row_group_is_cut_into_row_ranges_so_every_rank_gets_work(tmp_path):
    path = tmp_path / "one_group"
    deltalake.write_deltalake(str(path), _rows(range(50), split="train"), partition_by=["split"])
    assert sum(pq.ParquetFile(f).metadata.num_row_groups for f in path.glob("split=*/*.parquet")) == 1
    feed = _feed(str(path), version=0, batch_size=4, drop_last=True, shuffle_buffer=8, seed=3)
    for world in (2, 3):
        steps = feed.steps_per_epoch(world)
        assert 50 // world // 4 - 1 <= steps <= 50 // world // 4  # balanced ranges
        seen = []
        for rank in range(world):
            batches = list(feed.batches(rank, world, epoch=1))
            assert len(batches) == steps
            seen += [u for b in batches for u in b["user_id"]]
        assert len(seen) == len(set(seen)) == steps * world * 4
    full = _feed(str(path), version=0, batch_size=7)
    assert sorted(u for b in full.batches(0, 1) for u in b["user_id"]) == sorted(f"u{i:03d}" for i in range(50))
