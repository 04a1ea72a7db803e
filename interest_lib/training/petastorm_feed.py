"""The design card's feed: Petastorm's ``make_batch_reader`` over the pinned Delta snapshot.

A second implementation of :class:`~interest_lib.training.feed.Feed` (``train.feed: petastorm``),
for the card-exact environment built by ``scripts/install_card_env.sh`` (Petastorm 0.13.1 needs
pyarrow <= 14.0.2 and numpy < 2, so it cannot live in the default environment).

* **Same snapshot, same files.** The live Parquet files of the split at the pinned version come
  from the Delta log exactly as :class:`~interest_lib.training.feed.DeltaArrowFeed` lists them
  (:func:`~interest_lib.training.feed.list_split`, the storage layer's snapshot reader), and Petastorm reads
  those file URLs: no export, no conversion.
* **Sharded by Petastorm.** Each rank opens a reader with ``cur_shard=rank, shard_count=world``:
  Petastorm keeps row group ``i`` (in its own listing order) on rank ``i % world``. The feed
  replays that assignment from the Parquet footers, so :meth:`PetastormFeed.steps_per_epoch` is
  known up front and every rank yields exactly that many full batches with ``drop_last`` (ranks
  never wait on each other's all-reduce). Row groups are Petastorm's unit: a split with fewer row
  groups than ranks (Petastorm refuses those) is read whole by every rank, each keeping every
  ``world_size``-th row (the native feed cuts row groups into row ranges instead).
* **Same tensors.** Petastorm's numpy columns are converted to what the native feed delivers:
  list<int> -> int64 ``[B, L]``, list<float> -> float32 ``[B, L]``, int -> int64, float ->
  float32, bool -> bool, timestamp -> int64 epoch microseconds, string -> list of ``str``.
  Null scalars become 0 / False; a null *list* is not supported by Petastorm's batch reader and
  is reported as an error (the native feed fills it with zeros).
* **Deterministic.** One reader thread (Petastorm's ``ThreadPool(1)``) prefetches row groups in
  the order Petastorm's ventilator shuffles them with ``(seed, epoch)``; rows go through the same
  kind of shuffle buffer as the native feed, seeded with ``(seed, epoch, rank)``. Same seed, epoch
  and rank -> same batches, so a resumed run ends with the same weights.
* **A fix.** Petastorm 0.13.1's thread pool can end an epoch early and silently drop row groups
  (a race between "all workers idle" and "ventilator finished"; 17 of 40 reads here). The feed
  patches that one method on first use (:func:`_fix_thread_pool_end_of_epoch`).
* **Cache.** Off by default (local files gain nothing). With ``cache_dir`` (e.g. a folder of the
  run store) Petastorm's local-disk cache lives in a fresh sub-folder of it, removed when the
  feed is closed or garbage-collected.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import tempfile
import warnings
import weakref
from typing import Iterator, Optional
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa

from interest_lib.storage.arrays import is_list as _is_list, numpy_dtype as _numpy_dtype
from interest_lib.training.feed import Batch, Feed, FeedSpec, list_split, shuffled_batches

__all__ = ["PetastormFeed", "PetastormMissing", "PETASTORM_INSTALL_HINT", "require_petastorm"]

PETASTORM_INSTALL_HINT = (
    "train.feed='petastorm' needs petastorm 0.13.1, which only works with pyarrow <= 14.0.2 and "
    "numpy < 2 (not the default environment's pyspark 4.2 stack). Build the card environment with "
    "`scripts/install_card_env.sh` (creates .venv-card) and run with .venv-card/bin/python or "
    ".venv-card/bin/interest; or use train.feed='delta'.")


class PetastormMissing(ImportError, ValueError):
    """petastorm cannot be imported here (an ImportError, and a ValueError like an unknown feed)."""


def require_petastorm():
    """Import petastorm, or raise :class:`PetastormMissing` saying how to get an environment with it."""
    try:
        import petastorm  # noqa: F401
        from petastorm import make_batch_reader  # noqa: F401
        # Petastorm 0.13 drives pyarrow 14's legacy ParquetDataset on purpose: silence its notices.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm(\.|$)")
    except Exception as exc:  # ImportError, or pyarrow.filesystem missing on pyarrow >= 15
        raise PetastormMissing(f"{PETASTORM_INSTALL_HINT} (import failed: {exc!r})") from exc
    _fix_thread_pool_end_of_epoch()
    return petastorm


def _fix_thread_pool_end_of_epoch() -> None:
    """Fix a race in petastorm 0.13.1's ``ThreadPool.get_results`` that ends an epoch early.

    It asks "have all workers processed everything ventilated so far?" and only *then* "has the
    ventilator finished?". When the ventilator thread assigns its last row group(s) and finishes
    between the two questions, the reader stops and silently drops those row groups (seen here
    as an epoch of 0 rows, or one row group short, in about one read in five when the reader
    starts while the process is otherwise idle). Dropped rows would also break equal steps per
    rank. The fixed version asks the questions the other way round: the ventilator counts an item
    as assigned before it marks itself finished, so "finished, and every assigned item processed"
    means nothing is left. Applied once, to the pinned petastorm release only.
    """
    import queue

    from petastorm.workers_pool import EmptyResultError, VentilatedItemProcessedMessage
    from petastorm.workers_pool.thread_pool import _VERIFY_END_OF_VENTILATION_PERIOD, ThreadPool

    if getattr(ThreadPool, "_interest_fixed", False):
        return
    from importlib.metadata import version

    if version("petastorm") != "0.13.1":
        return

    def get_results(self):
        use_non_blocking_get = self._shuffle_rows and (self._seed is None or self._seed == 0)
        while True:
            ventilation_done = not self._ventilator or self._ventilator.completed()  # read first
            if ventilation_done and self.all_workers_done():
                raise EmptyResultError()
            if self.current_worker_done(self._get_results_worker_id):
                self._get_results_worker_id = (self._get_results_worker_id + 1) % self.workers_count
                continue
            try:
                result = self._results_queues[self._get_results_worker_id].get(
                    block=not use_non_blocking_get, timeout=_VERIFY_END_OF_VENTILATION_PERIOD)
            except queue.Empty:
                continue
            if isinstance(result, VentilatedItemProcessedMessage):
                self._ventilated_items_processed_by_worker[self._get_results_worker_id] += 1
                if self._ventilator:
                    self._ventilator.processed_item()
                self._get_results_worker_id = (self._get_results_worker_id + 1) % self.workers_count
                continue
            if isinstance(result, Exception):
                self.stop()
                self.join()
                raise result
            return result

    ThreadPool.get_results = get_results
    ThreadPool._interest_fixed = True


class PetastormFeed(Feed):
    """Petastorm's batch reader over the snapshot's Parquet files, one reader per rank and epoch."""

    name = "petastorm"

    #: Petastorm reader threads. 1 keeps the row-group order (and so training) deterministic while
    #: still reading ahead of the training step; more threads read faster in arbitrary order.
    workers_count = 1

    def __init__(self, spec: FeedSpec, cache_dir: Optional[str] = None, workers_count: Optional[int] = None):
        """List the split's files from the Delta log and check the columns (as the native feed).

        Raises PetastormMissing (an ImportError saying how to install) without petastorm;
        ValueError for an empty split or unknown / unsupported columns.
        """
        require_petastorm()
        super().__init__(spec)
        listing = list_split(spec)  # the snapshot's (file, row group, rows) + column types, as the native feed's
        self._types: dict[str, pa.DataType] = listing.types
        self._where = listing.where
        scheme = urlparse(spec.table_path).scheme
        self._scheme = "file" if scheme in ("", "file") else scheme
        self._rows = {(u.path, u.row_group): u.rows for u in listing.units}
        self._files = sorted({u.path for u in listing.units})
        if workers_count is not None:
            self.workers_count = workers_count
        self._pieces: Optional[list[tuple[str, int]]] = None
        self._cache_root = None
        if cache_dir:
            os.makedirs(cache_dir, exist_ok=True)
            self._cache_root = tempfile.mkdtemp(prefix="petastorm-cache-", dir=cache_dir)
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._cache_root, True)

    # --- metadata ------------------------------------------------------------------------------
    def urls(self) -> list[str]:
        """The snapshot's Parquet files of the split, as the URLs handed to Petastorm."""
        if self._scheme == "file":
            return ["file://" + p for p in self._files]
        return [f"{self._scheme}://{p}" for p in self._files]

    def _petastorm_pieces(self) -> list[tuple[str, int]]:
        """(path, row group) in the order Petastorm numbers them for sharding (its own listing)."""
        if self._pieces is None:
            import pyarrow.parquet as pq
            from petastorm.etl.dataset_metadata import load_row_groups
            from petastorm.fs_utils import get_filesystem_and_path_or_paths

            fs, paths = get_filesystem_and_path_or_paths(self.urls())
            with warnings.catch_warnings():  # the legacy ParquetDataset, as Petastorm's reader opens it
                warnings.simplefilter("ignore", FutureWarning)
                dataset = pq.ParquetDataset(paths, filesystem=fs, validate_schema=False)
            self._pieces = [(self._norm(p.path), p.row_group) for p in load_row_groups(dataset)]
            unknown = [p for p in self._pieces if p not in self._rows]
            if unknown:
                raise RuntimeError(f"{self._where}: petastorm lists row groups the Delta log does not: "
                                   f"{unknown[:3]}")
        return self._pieces

    @staticmethod
    def _norm(path: str) -> str:
        return path[len("file://"):] if path.startswith("file://") else path

    def _row_sharded(self, world_size: int) -> bool:
        """Whether the split has too few row groups for Petastorm's sharding (see :meth:`_chunks`)."""
        return len(self._petastorm_pieces()) < world_size

    def _shard_rows(self, world_size: int) -> list[int]:
        """Rows per rank under Petastorm's sharding (row group i -> rank i % world_size), or
        under the row-level fallback when the split has fewer row groups than ranks."""
        if world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size}")
        pieces = self._petastorm_pieces()
        if self._row_sharded(world_size):
            total = sum(self._rows[p] for p in pieces)
            return [total // world_size + (r < total % world_size) for r in range(world_size)]
        rows = [0] * world_size
        for i, piece in enumerate(pieces):
            rows[i % world_size] += self._rows[piece]
        return rows

    def num_rows(self) -> int:
        """Rows of the split in the pinned snapshot (from Parquet metadata)."""
        return sum(self._rows.values())

    def steps_per_epoch(self, world_size: int = 1) -> int:
        """``drop_last``: floor(rows of the smallest shard / batch_size); else the largest shard's."""
        rows = self._shard_rows(world_size)
        size = self.spec.batch_size
        return min(rows) // size if self.spec.drop_last else max(math.ceil(r / size) for r in rows)

    # --- reading -------------------------------------------------------------------------------
    def reader(self, rank: int = 0, world_size: int = 1, epoch: int = 0, **overrides):
        """Petastorm's ``make_batch_reader`` for this rank and epoch (a context manager).

        ``overrides`` go to ``make_batch_reader`` (the benchmark uses them to measure the reader
        with its own defaults).
        """
        from petastorm import make_batch_reader

        shuffle = bool(self.spec.shuffle_buffer)
        kwargs = dict(schema_fields=list(self.spec.columns), reader_pool_type="thread",
                      workers_count=self.workers_count, num_epochs=1,
                      shuffle_row_groups=shuffle, shuffle_rows=False,
                      seed=int(np.random.SeedSequence([self.spec.seed, epoch]).generate_state(1)[0]),
                      cur_shard=rank, shard_count=world_size)
        if self._cache_root:
            # One reader per epoch: keep the cache when a reader stops (Petastorm would delete it)
            # so later epochs read from it; the feed removes the folder in close().
            kwargs.update(cache_type="local-disk", cache_location=self._cache_root,
                          cache_size_limit=int(os.environ.get("INTEREST_PETASTORM_CACHE_BYTES", 10 << 30)),
                          cache_row_size_estimate=1024, cache_extra_settings={"cleanup": False})
        kwargs.update(overrides)
        return make_batch_reader(self.urls(), **kwargs)

    def batches(self, rank: int = 0, world_size: int = 1, epoch: int = 0) -> Iterator[Batch]:
        """This rank's batches: exactly :meth:`steps_per_epoch` of them with ``drop_last``."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        limit = self.steps_per_epoch(world_size) if self.spec.drop_last else None
        rng = np.random.default_rng([self.spec.seed, epoch, rank])
        return itertools.islice(shuffled_batches(self._chunks(rank, world_size, epoch), self.spec, rng), limit)

    def _chunks(self, rank: int, world_size: int, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        """Petastorm's row-group batches of this shard, converted to the native feed's arrays.

        Petastorm shards by row group and refuses more shards than row groups. A split that small
        (a tiny validation split, say) is read whole by every rank in the same (seed, epoch) order
        instead, each keeping every ``world_size``-th row from its rank on: still disjoint and
        complete, at the price of every rank reading the (small) split.
        """
        row_sharded = self._row_sharded(world_size)
        shard = dict(cur_shard=None, shard_count=None) if row_sharded else {}
        seen = 0
        with self.reader(rank, world_size, epoch, **shard) as reader:
            try:
                for item in reader:
                    raw = item._asdict()
                    chunk = {c: self._convert(c, raw[c]) for c in self.spec.columns}
                    if row_sharded:
                        n = len(next(iter(chunk.values())))
                        keep = np.arange((rank - seen) % world_size, n, world_size)
                        seen += n
                        chunk = {c: v[keep] for c, v in chunk.items()}
                    yield chunk
            finally:
                disk = getattr(getattr(reader, "cache", None), "_cache", None)
                if disk is not None:  # the kept local-disk cache: release its files and threads
                    disk.close()

    def _convert(self, column: str, values: np.ndarray) -> np.ndarray:
        """Petastorm's numpy column -> the native feed's dtype (nulls -> 0 / False)."""
        arrow_type = self._types[column]
        if _is_list(arrow_type):
            dtype = _numpy_dtype(arrow_type.value_type)
            values = np.asarray(values)
            if values.dtype == object or values.ndim != 2:
                raise ValueError(f"{self._where}: list column {column!r} came back from Petastorm as "
                                 f"{values.dtype} {values.shape}: null or ragged lists are not supported "
                                 "by the petastorm feed (use train.feed=delta)")
            if np.issubdtype(values.dtype, np.floating):
                # pandas turns null elements into NaN (and int lists with nulls into floats): 0 as
                # in the native feed (a NaN stored as a value becomes 0 here too)
                values = np.nan_to_num(values, nan=0.0)
            return np.ascontiguousarray(values.astype(dtype, copy=False))
        dtype = _numpy_dtype(arrow_type)
        values = np.asarray(values)
        if dtype == object:  # Petastorm returns fixed-width unicode; the native feed lists of str
            return values.astype(str).astype(object)
        if pa.types.is_timestamp(arrow_type):
            # pandas datetime64[ns] -> epoch microseconds (NaT -> 0)
            stamps = values.astype("datetime64[us]")
            out = stamps.astype(np.int64)
            out[np.isnat(stamps)] = 0
            return out
        if values.dtype == object:  # a bool column with nulls comes back as objects (None)
            values = np.array([False if v is None else v for v in values.tolist()] if dtype == bool
                              else [0 if v is None else v for v in values.tolist()])
        if np.issubdtype(values.dtype, np.floating) and dtype != np.float32:
            values = np.nan_to_num(values, nan=0.0)  # an int column with nulls comes back as float NaN
        return values.astype(dtype, copy=False)

    def close(self) -> None:
        """Remove the Petastorm cache folder, if any (also done when the feed is collected)."""
        if self._cache_root:
            self._cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

