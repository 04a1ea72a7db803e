"""The one reader of Delta snapshots: a version's live files, their partition values and row
groups, without Spark or a JVM.

delta-rs (``deltalake``) replays the Delta log and lists the version's live data files
(``DeltaTable.get_add_actions``); pyarrow reads their footers and rows. Every Spark-free reader of
the project lists tables here: the training feeds (row groups of one split), the delta-rs engine
(the files Spark reads, the files a write removes), :mod:`~interest_lib.storage.arrow_snapshot`
(tests, notebooks, benches) and evaluation and scoring (:func:`~interest_lib.storage.arrays.read_arrays`). Importing it imports neither
pyspark nor torch.

Partition columns are not stored in the files: each file's values come from the log and are
given to pyarrow as the file's partition expression (cast to the table schema's type). Paths in
the log are URL-encoded (a partition value ``a b`` lives in the folder ``k=a%20b``, logged as
``k=a%2520b``), so they are unquoted once. Tables with column mapping, and versions with deletion
vectors, are refused rather than misread (their files alone do not give the rows). The
``DeltaTable.to_pyarrow_*`` / ``to_pandas`` methods are deliberately not used: with deltalake 1.6.6
they can abort the interpreter at exit.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import Mapping, NamedTuple, Optional, Sequence
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyarrow import fs as pafs

__all__ = ["SnapshotFile", "RowGroup", "Snapshot", "open_snapshot", "is_delta_table"]


@dataclass(frozen=True)
class SnapshotFile:
    """One live data file of a snapshot."""

    log_path: str
    """The path as the Delta log records it (relative to the table, URL-encoded)."""
    path: str
    """The file's path inside the snapshot's filesystem (absolute, unquoted)."""
    size: Optional[int]
    """Bytes, as logged."""
    partition: dict
    """Partition column -> the file's value as delta-rs returns it (None for null)."""


class RowGroup(NamedTuple):
    """One row group of one data file (``path`` inside the snapshot's filesystem)."""

    path: str
    row_group: int
    rows: int


def _filesystem(table_path: str) -> tuple[pafs.FileSystem, str, str]:
    """(pyarrow filesystem, root inside it, location delta-rs opens) of a table path or URI."""
    if table_path.startswith("file://"):
        table_path = unquote(table_path[len("file://"):])
    if "://" in table_path:
        filesystem, root = pafs.FileSystem.from_uri(table_path)
        return filesystem, root.rstrip("/"), table_path
    local = os.path.abspath(table_path)
    return pafs.LocalFileSystem(), local, local


def is_delta_table(table_path: str) -> bool:
    """True when ``table_path`` holds a Delta log."""
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(_filesystem(table_path)[2])


class Snapshot:
    """One version of a Delta table: schema, partition columns and live files (listed once)."""

    def __init__(self, table_path: str, version: Optional[int] = None, check_readable: bool = True):
        """Replay the log of ``table_path`` at ``version`` (None: latest).

        Raises:
            deltalake.exceptions.TableNotFoundError: no Delta table there.
            deltalake.exceptions.DeltaProtocolError: with ``check_readable``, the table uses column
                mapping or the version has deletion vectors (its files alone do not give the rows).
        """
        from deltalake import DeltaTable

        self.table_path = table_path
        self.filesystem, self.root, location = _filesystem(table_path)
        self.table = DeltaTable(location, version=version)
        self.version: int = self.table.version()
        if check_readable:
            self._check_readable()
        self.schema: pa.Schema = pa.schema(self.table.schema().to_arrow())
        self.partition_columns: list[str] = list(self.table.metadata().partition_columns)
        actions = pa.table(self.table.get_add_actions(flatten=False))
        self.files: list[SnapshotFile] = [
            SnapshotFile(a["path"], posixpath.join(self.root, unquote(a["path"])), a.get("size_bytes"),
                         dict(a.get("partition") or {}))
            for a in actions.select([c for c in ("path", "size_bytes", "partition")
                                     if c in actions.column_names]).to_pylist()]

    def _check_readable(self) -> None:
        from deltalake.exceptions import DeltaProtocolError

        features = set(self.table.protocol().reader_features or ())
        mapping = self.table.metadata().configuration.get("delta.columnMapping.mode") or "none"
        if mapping != "none" or "columnMapping" in features:
            raise DeltaProtocolError(f"Delta table {self.table_path} uses column mapping (mode {mapping}): "
                                     "its files hold physical column names; read it with delta-rs' engine")
        if "deletionVectors" in features and any(b.num_rows for b in self.table.deletion_vectors()):
            raise DeltaProtocolError(f"Delta table {self.table_path} version {self.version} has deletion "
                                     "vectors: its files still hold deleted rows; read it with delta-rs' engine")

    def __repr__(self) -> str:
        return f"Delta table {self.table_path} version {self.version}"

    def select(self, where: Optional[Mapping[str, object]] = None) -> list[SnapshotFile]:
        """The live files whose partition values equal ``where`` (all files when None), in path order.

        Raises:
            ValueError: a key of ``where`` is not a partition column of the table.
        """
        where = dict(where or {})
        unknown = sorted(set(where) - set(self.partition_columns))
        if unknown:
            raise ValueError(f"{self} is not partitioned by {unknown} (partition columns: "
                             f"{self.partition_columns})")
        picked = [f for f in self.files
                  if all(_same(f.partition.get(k), v) for k, v in where.items())]
        return sorted(picked, key=lambda f: f.path)

    def select_partitions(self, partitions: Optional[Sequence[Mapping[str, object]]]) -> list[SnapshotFile]:
        """The live files in any of ``partitions`` (each: column -> value, None for null), in
        path order; all files when ``partitions`` is None."""
        if partitions is None:
            return sorted(self.files, key=lambda f: f.path)
        picked = {f.path: f for where in partitions for f in self.select(where)}
        return [picked[p] for p in sorted(picked)]

    def row_groups(self, files: Sequence[SnapshotFile]) -> tuple[list[RowGroup], Optional[pa.Schema]]:
        """Non-empty row groups of ``files`` (in the given order) from their Parquet footers, and
        the files' Parquet schema (without partition columns; None when there are no files)."""
        units, schema = [], None
        for f in files:
            meta = pq.read_metadata(f.path, filesystem=self.filesystem)
            schema = schema or meta.schema.to_arrow_schema()
            units += [RowGroup(f.path, i, meta.row_group(i).num_rows)
                      for i in range(meta.num_row_groups) if meta.row_group(i).num_rows]
        return units, schema

    def dataset(self, files: Optional[Sequence[SnapshotFile]] = None) -> ds.Dataset:
        """The files (default: all live files) as a lazy pyarrow dataset with the table's schema,
        partition columns filled in from each file's values (null where the value is null)."""
        files = self.files if files is None else files
        return ds.FileSystemDataset.from_paths(
            [f.path for f in files], schema=self.schema, format=ds.ParquetFileFormat(),
            filesystem=self.filesystem, partitions=[self._partition_expression(f) for f in files])

    def read(self, columns: Optional[Sequence[str]] = None,
             where: Optional[Mapping[str, object]] = None) -> pa.Table:
        """Rows of the files matching ``where`` (see :meth:`select`; all when None) in path
        order, ``columns`` only (partition columns too) in that order; None for all."""
        files = self.files if where is None else self.select(where)
        return self.dataset(files).to_table(columns=None if columns is None else list(columns))

    def _partition_expression(self, f: SnapshotFile) -> ds.Expression:
        expression = ds.scalar(True)
        for name, value in f.partition.items():
            field = self.schema.field(name)
            expression &= (ds.field(name).is_null() if value is None
                           else ds.field(name) == pa.scalar(value).cast(field.type))
        return expression


def _same(value, wanted) -> bool:
    """A logged partition value (typed or text, by delta-rs release) equals ``wanted``."""
    return value == wanted or (value is not None and str(value) == str(wanted))


def open_snapshot(table_path: str, version: Optional[int] = None, check_readable: bool = True) -> Snapshot:
    """:class:`Snapshot` of ``table_path`` at ``version`` (None: latest)."""
    return Snapshot(table_path, version, check_readable)
