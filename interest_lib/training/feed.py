"""Training feeds: stream a pinned Delta snapshot's Parquet files straight into PyTorch.

Why it is built this way:

* **No extra copy of the data.** The Delta log names the Parquet files that make up version ``v``
  of the table; the feed reads exactly those files, only the requested columns, and turns the
  Arrow buffers into tensors. Nothing is exported, converted or cached on disk, and pinning the
  version keeps a training run reproducible while the table moves on.
* **Row-group sharding.** A (file, row group) pair is the smallest piece Parquet reads on its own,
  so it is the unit of work. Units are spread over the ranks by their row counts (largest first
  onto the least-loaded rank): ranks get similar amounts of data and never read each other's rows.
  Memory stays bounded by the shuffle buffer plus one row group.
* **Equal steps for DDP.** With ``drop_last=True`` every rank yields exactly
  :meth:`Feed.steps_per_epoch` full batches, computed from Parquet metadata alone; a rank taking
  one step more than the others would wait forever in the gradient all-reduce. Each rank's row
  total is the same in every epoch (see :meth:`DeltaArrowFeed._assign`), so the count holds for
  all epochs.

:class:`Feed` is the small interface a second implementation (e.g. Petastorm) would fill in;
:func:`make_feed` picks one by name.
"""

from __future__ import annotations

import abc
import heapq
import itertools
import math
from dataclasses import dataclass
from typing import Iterable, Iterator, NamedTuple, Union

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from interest_lib.registry import FEEDS, resolve
from interest_lib.storage.arrays import column_to_numpy, is_list, numpy_dtype, supported
from interest_lib.storage.snapshot import open_snapshot

__all__ = ["Batch", "FeedSpec", "Feed", "DeltaArrowFeed", "FEEDS", "make_feed"]

Batch = dict[str, Union[torch.Tensor, list]]
"""One batch: column -> tensor ``[B]`` or ``[B, L]``, or a list of ``str`` for string columns."""


@dataclass
class FeedSpec:
    """What to feed: a pinned snapshot of a Delta table, which rows and columns, how to batch them.

    ``split=""`` delivers every row of the snapshot. ``shuffle_buffer`` is the number of rows held
    for shuffling (0: file order, no shuffle). Training sets ``drop_last=True`` so every rank
    yields the same number of full batches; evaluation keeps ``False`` to see every row once.
    """

    table_path: str
    version: int
    split: str
    columns: list[str]
    batch_size: int = 256
    shuffle_buffer: int = 0
    seed: int = 0
    drop_last: bool = False


class Feed(abc.ABC):
    """A source of tensor batches for one :class:`FeedSpec`, sharded over ``world_size`` ranks."""

    name: str

    def __init__(self, spec: FeedSpec):
        """Keep the spec; implementations validate the table and columns here."""
        if spec.batch_size < 1 or spec.shuffle_buffer < 0:
            raise ValueError(f"batch_size must be >= 1 and shuffle_buffer >= 0, got {spec}")
        self.spec = spec

    @abc.abstractmethod
    def batches(self, rank: int = 0, world_size: int = 1, epoch: int = 0) -> Iterator[Batch]:
        """This rank's batches for one epoch (deterministic for a given seed, epoch and rank)."""

    @abc.abstractmethod
    def steps_per_epoch(self, world_size: int = 1) -> int:
        """Batches each rank yields per epoch; with ``drop_last=True`` the same on every rank.

        With ``drop_last=False`` ranks may differ and this is the largest of them.
        """

    @abc.abstractmethod
    def num_rows(self) -> int:
        """Rows of the selected split in the pinned snapshot."""

    def dataset(self, rank: int = 0, world_size: int = 1, epoch: int = 0
                ) -> torch.utils.data.IterableDataset:
        """:meth:`batches` as an IterableDataset, for ``DataLoader(ds, batch_size=None)``.

        Use ``num_workers`` 0 or 1: several workers would each deliver the whole stream.
        """
        return _FeedDataset(self, rank, world_size, epoch)


class _FeedDataset(torch.utils.data.IterableDataset):
    """Adapter from :meth:`Feed.batches` to the DataLoader protocol."""

    def __init__(self, feed: Feed, rank: int, world_size: int, epoch: int):
        super().__init__()
        self.feed, self.rank, self.world_size, self.epoch = feed, rank, world_size, epoch

    def __iter__(self) -> Iterator[Batch]:
        info = torch.utils.data.get_worker_info()
        if info is not None and info.num_workers > 1:
            raise ValueError(f"{type(self.feed).__name__} supports DataLoader num_workers <= 1, "
                             f"got {info.num_workers}: more workers would repeat every batch")
        return self.feed.batches(self.rank, self.world_size, self.epoch)


class _Unit(NamedTuple):
    """Rows ``[offset, offset + rows)`` of one row group of one Parquet file: the unit of work
    that is sharded over ranks (a whole row group unless the table has too few of them)."""

    path: str
    row_group: int
    rows: int
    offset: int = 0


#: Row groups per rank below which ranks get exact row quotas instead (small tables, many ranks).
MIN_UNITS_PER_RANK = 16


def _quota_split(units: list[_Unit], world_size: int) -> list[list[_Unit]]:
    """Cut the units, in the given order, into ``world_size`` runs of equal row counts (±1),
    cutting row groups into row ranges where a boundary falls inside one. Used when a table has
    too few row groups for whole-row-group sharding to balance the ranks."""
    total = sum(u.rows for u in units)
    bounds = [total * r // world_size for r in range(world_size + 1)]
    owned: list[list[_Unit]] = [[] for _ in range(world_size)]
    start = 0  # global row index of the current unit's first row
    for u in units:
        lo = 0
        while lo < u.rows:
            rank = next(r for r in range(world_size) if start + lo < bounds[r + 1])
            hi = min(u.rows, bounds[rank + 1] - start)
            owned[rank].append(_Unit(u.path, u.row_group, hi - lo, u.offset + lo))
            lo = hi
        start += u.rows
    return owned


#: Kept under their old names for the petastorm feed and older callers (storage.arrays owns them).
_numpy_dtype, _is_list = numpy_dtype, is_list


def shuffled_batches(chunks: Iterable[dict], spec: FeedSpec, rng: np.random.Generator) -> Iterator[Batch]:
    """Stream column chunks (numpy arrays per column) through a buffer of ``spec.shuffle_buffer``
    rows, emitting batches of random rows from it (file order when 0); the last batch is short
    unless ``spec.drop_last``. Shared by every feed so they batch and shuffle alike."""
    size, keep = spec.batch_size, spec.shuffle_buffer

    def emit(buffer: dict[str, np.ndarray], rows: np.ndarray) -> Iterator[Batch]:
        for start in range(0, len(rows), size):
            pick = rows[start:start + size]
            yield {c: v[pick].tolist() if v.dtype == object else torch.from_numpy(v[pick])
                   for c, v in buffer.items()}

    buffer: dict[str, np.ndarray] = {}
    for chunk in chunks:
        if buffer:
            chunk = {c: np.concatenate([buffer[c], chunk[c]]) for c in chunk}
        buffer = chunk
        n = len(next(iter(buffer.values())))
        ready = max(0, n - keep) // size * size
        if ready:
            order = rng.permutation(n) if keep else np.arange(n)
            yield from emit(buffer, order[:ready])
            buffer = {c: v[order[ready:]] for c, v in buffer.items()}
    if buffer:
        n = len(next(iter(buffer.values())))
        order = rng.permutation(n) if keep else np.arange(n)
        yield from emit(buffer, order[:n // size * size if spec.drop_last else n])


class SplitListing(NamedTuple):
    """What every feed needs to know of its split before reading a row."""

    where: str
    """``Delta table <path> version <v>``, for messages."""
    filesystem: object
    """The pyarrow filesystem the unit paths live in."""
    units: list[_Unit]
    """The split's non-empty row groups, in path order."""
    types: dict[str, pa.DataType]
    """Requested column -> its Parquet type."""


def list_split(spec: FeedSpec) -> SplitListing:
    """List the split of the pinned snapshot with the storage layer's snapshot reader (files,
    partition values, row groups) and check the requested columns.

    Raises ValueError, naming the table and version, when the split has no rows or a column
    does not exist or has an unsupported type.
    """
    where = f"Delta table {spec.table_path} version {spec.version}"
    snapshot = open_snapshot(spec.table_path, spec.version)
    if spec.split and "split" not in snapshot.partition_columns:
        raise ValueError(f"{where} is not partitioned by split")
    row_groups, schema = snapshot.row_groups(snapshot.select({"split": spec.split} if spec.split else None))
    units = [_Unit(r.path, r.row_group, r.rows) for r in row_groups]
    if not units:
        raise ValueError(f"{where}: no rows for split {spec.split!r}")
    missing = [c for c in spec.columns if c not in schema.names]
    if missing or not spec.columns:
        raise ValueError(f"{where}: unknown columns {missing or spec.columns}; available: {schema.names}")
    types = {c: schema.field(c).type for c in spec.columns}
    for column, arrow_type in types.items():
        if not supported(arrow_type):
            raise ValueError(f"{where}: column {column!r} has unsupported type {arrow_type}")
    return SplitListing(where, snapshot.filesystem, units, types)


class DeltaArrowFeed(Feed):
    """Reads the pinned snapshot's Parquet row groups with pyarrow, no copy of the table.

    Delivered per column: list<int> -> int64 ``[B, L]``, list<float> -> float32 ``[B, L]``,
    int -> int64 ``[B]``, float -> float32 ``[B]``, bool -> bool ``[B]``, timestamp -> int64
    epoch microseconds ``[B]``, string -> list of ``str``. Nulls become zeros (a null list: a row
    of zeros; a null scalar: 0 / False). The partition column (``split``) is not deliverable: it
    lives only in the Delta log.
    """

    name = "delta"

    def __init__(self, spec: FeedSpec):
        """List the snapshot's live files for the split and check the requested columns.

        Raises ValueError, naming the table and version, when the split has no rows or a column
        does not exist or has an unsupported type.
        """
        super().__init__(spec)
        self._widths: dict[str, int] = {}
        listing = list_split(spec)
        self._where, self._fs, self._units, self._types = listing.where, listing.filesystem, listing.units, listing.types

    def _assign(self, world_size: int, epoch: int) -> list[list[_Unit]]:
        """Units per rank, in file order: largest first onto the least-loaded rank.

        When shuffling, the units are permuted with (seed, epoch) before a *stable* sort by size,
        so only equally sized units trade ranks between epochs. The sequence of sizes, and with it
        every rank's row total, is therefore the same in every epoch.
        """
        if world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size}")
        units = self._units
        sizes = np.array([u.rows for u in units])
        order = np.arange(len(sizes))
        if self.spec.shuffle_buffer:
            order = np.random.default_rng([self.spec.seed, epoch]).permutation(order)
        if len(units) < MIN_UNITS_PER_RANK * world_size:
            return _quota_split([units[i] for i in order], world_size)
        order = order[np.argsort(-sizes[order], kind="stable")]
        heap = [(0, rank) for rank in range(world_size)]
        owned: list[list[int]] = [[] for _ in range(world_size)]
        for i in order:
            load, rank = heapq.heappop(heap)
            owned[rank].append(i)
            heapq.heappush(heap, (load + int(sizes[i]), rank))
        return [[units[i] for i in sorted(idx)] for idx in owned]

    def num_rows(self) -> int:
        """Rows of the split in the pinned snapshot (from Parquet metadata)."""
        return sum(u.rows for u in self._units)

    def steps_per_epoch(self, world_size: int = 1) -> int:
        """``drop_last``: floor(rows of the smallest rank / batch_size); else the largest rank's."""
        rows = [sum(u.rows for u in units) for units in self._assign(world_size, 0)]
        size = self.spec.batch_size
        return min(rows) // size if self.spec.drop_last else max(math.ceil(r / size) for r in rows)

    def batches(self, rank: int = 0, world_size: int = 1, epoch: int = 0) -> Iterator[Batch]:
        """This rank's batches: its row groups (shuffled in order and through the buffer when
        ``shuffle_buffer > 0``), exactly :meth:`steps_per_epoch` of them with ``drop_last``."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        rng = np.random.default_rng([self.spec.seed, epoch, rank])
        units = self._assign(world_size, epoch)[rank]
        if self.spec.shuffle_buffer:
            units = [units[i] for i in rng.permutation(len(units))]
        limit = self.steps_per_epoch(world_size) if self.spec.drop_last else None
        return itertools.islice(shuffled_batches((self._read(u) for u in units), self.spec, rng), limit)

    def _read(self, unit: _Unit) -> dict[str, np.ndarray]:
        """One row group of the requested columns as numpy arrays."""
        with pq.ParquetFile(unit.path, filesystem=self._fs) as parquet:
            table = parquet.read_row_group(unit.row_group, columns=self.spec.columns)
        if unit.offset or unit.rows < table.num_rows:
            table = table.slice(unit.offset, unit.rows)
        return {c: self._to_numpy(c, table.column(c).combine_chunks()) for c in self.spec.columns}

    def _to_numpy(self, column: str, array: pa.Array) -> np.ndarray:
        """A column as numpy (see :mod:`interest_lib.storage.arrays`); list widths are kept
        across this feed's row groups."""
        return column_to_numpy(array, self._types[column], column, self._where, self._widths)


def make_feed(name: str, spec: FeedSpec) -> Feed:
    """The feed called ``name`` (a key of :data:`interest_lib.registry.FEEDS`) for ``spec``."""
    if name not in FEEDS:
        raise ValueError(f"unknown feed {name!r}; known feeds: {sorted(FEEDS)}")
    return resolve(FEEDS[name])(spec)
