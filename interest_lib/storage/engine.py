"""The table API every job uses, and the interface both Delta engines implement."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

if TYPE_CHECKING:  # the error classes and Txn are imported by Spark-free readers too
    from pyspark.sql import DataFrame, SparkSession

WRITE_MODES = ("append", "overwrite", "overwrite-partitions")


class TableError(RuntimeError):
    """A table operation could not be done; the message names the table."""


class TableNotFoundError(TableError):
    """The table has no Delta log yet."""


class SchemaMismatchError(TableError):
    """Data written to a table does not match the table's schema."""


class ConcurrentWriteError(TableError):
    """Another writer committed to the table after the version this write was computed from;
    nothing of this write was committed (rerun the job to compute it from the new version)."""


def stale_read_message(name: str, expected: int, found: int) -> str:
    """The message of :class:`ConcurrentWriteError`: names the table and both versions."""
    seen = "did not exist" if expected < 0 else f"was at version {expected}"
    return (f"{name}: another writer committed to the table (now at version {found}) after this "
            f"job read it (it {seen}); nothing of this write was committed. Rerun the job: it "
            "starts from the new version")


def check_same_schema(name: str, have, want) -> None:
    """Raise :class:`SchemaMismatchError` naming the table and the missing, unexpected and
    retyped columns when Spark schema ``have`` (the data) differs from ``want`` (the table).
    Nullability is ignored: Parquet round trips do not preserve it."""
    have_types = {f.name: f.dataType.simpleString() for f in have.fields}
    want_types = {f.name: f.dataType.simpleString() for f in want.fields}
    if have_types != want_types:
        missing = sorted(set(want_types) - set(have_types))
        extra = sorted(set(have_types) - set(want_types))
        changed = sorted(k for k in set(have_types) & set(want_types) if have_types[k] != want_types[k])
        raise SchemaMismatchError(
            f"{name}: data does not match the table schema (missing {missing}, "
            f"unexpected {extra}, type changed {changed})"
        )


MAX_PRUNED_PARTITIONS = 1000
"""A MERGE whose source spans more partitions than this looks in the whole target."""


def merge_partitions(source: DataFrame, keys: Sequence[str],
                     partition_by: Sequence[str]) -> Optional[list[dict]]:
    """The partitions (column -> value; None for null) a MERGE of ``source`` can touch, or None
    when any may be touched: no partitioning, a partition column that is not a key, or more
    than :data:`MAX_PRUNED_PARTITIONS` partitions.

    With every partition column among the keys, a match lies in a partition the source holds,
    so the MERGE reads and rewrites only those (a stream micro-batch: today's, not the history).
    """
    if not partition_by or not set(partition_by) <= set(keys):
        return None
    rows = source.select(*partition_by).distinct().limit(MAX_PRUNED_PARTITIONS + 1).collect()
    if len(rows) > MAX_PRUNED_PARTITIONS:
        return None
    return [row.asDict() for row in rows]


def partition_predicate(partitions: list[dict], prefix: str = ""):
    """A Column true for rows in one of ``partitions`` (columns named ``prefix + column``)."""
    from pyspark.sql import functions as F

    kept = F.lit(False)
    for values in partitions:
        match = F.lit(True)
        for col, value in values.items():
            match = match & F.col(prefix + col).eqNullSafe(F.lit(value))
        kept = kept | match
    return kept


@dataclass(frozen=True)
class Txn:
    """An idempotent-write token: a write with an (app_id, version) already committed is skipped.

    ``app_id`` names the writer (job + run id); ``version`` increases with each new write of it.
    """

    app_id: str
    version: int = 1


@dataclass(frozen=True)
class WriteResult:
    """What a write did: the table version it produced (or found), and whether it was skipped."""

    table: str
    version: int
    skipped: bool = False
    files_added: int = 0
    files_removed: int = 0
    rows_written: Optional[int] = None


class DeltaEngine(abc.ABC):
    """One way of reading and committing Delta tables (delta-spark or delta-rs)."""

    name = "abstract"

    def __init__(self, spark: SparkSession):
        self.spark = spark

    @abc.abstractmethod
    def exists(self, path: str) -> bool:
        """True when ``path`` holds a Delta table."""

    @abc.abstractmethod
    def read(self, path: str, version: Optional[int] = None) -> DataFrame:
        """The table (at ``version``, default latest) as a Spark DataFrame."""

    @abc.abstractmethod
    def write(
        self, df: DataFrame, path: str, mode: str, partition_by: Sequence[str],
        txn: Optional[Txn], name: str, expected_version: Optional[int] = None,
    ) -> WriteResult:
        """Commit ``df`` to the table in one transaction.

        ``expected_version``: the table version ``df`` was computed from (-1: the table did not
        exist); the write raises :class:`ConcurrentWriteError` if another commit landed since.
        """

    @abc.abstractmethod
    def merge(
        self, source: DataFrame, path: str, keys: Sequence[str], delete_flag: Optional[str],
        partition_by: Sequence[str], txn: Optional[Txn], name: str,
        expected_version: Optional[int] = None,
    ) -> WriteResult:
        """Upsert ``source`` by ``keys``; rows whose ``delete_flag`` is true delete the match.
        ``expected_version`` as in :meth:`write`."""

    @abc.abstractmethod
    def version(self, path: str) -> int:
        """Latest committed version."""

    @abc.abstractmethod
    def history(self, path: str) -> list[dict]:
        """Commit history, newest first: version, timestamp, operation, parameters."""

    @abc.abstractmethod
    def txn_version(self, path: str, app_id: str) -> Optional[int]:
        """Latest committed version of the idempotent writer ``app_id``, or None."""

    @abc.abstractmethod
    def live_files(self, path: str, version: Optional[int] = None) -> list[str]:
        """Relative paths of the live data files of ``version`` (default latest)."""

    @abc.abstractmethod
    def optimize(self, path: str, zorder_by: Sequence[str] = ()) -> dict:
        """Rewrite small files into fewer large ones (Z-ordered by ``zorder_by`` when given) in
        one commit; returns ``{"files_removed": n, "files_added": m}``."""

    @abc.abstractmethod
    def vacuum(self, path: str, retention_hours: float) -> int:
        """Delete data files no version younger than ``retention_hours`` needs; returns how many."""
