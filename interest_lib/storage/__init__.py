"""The Delta table API every job uses: :class:`Tables` (in :mod:`~interest_lib.storage.tables`).

Two engines behind one interface, chosen automatically (``storage.engine: auto``): the Delta
data source when its jars are on the JVM classpath (clusters, Databricks), delta-rs otherwise
(local machines, CI). Both write genuine Delta tables with atomic, idempotent commits.

Concurrent writers never both commit results computed from the same old state: a job holds the
writer locks of the tables it writes (:meth:`Tables.writer_lock`, local warehouses; a second job
waits up to ``storage.lock_timeout_seconds``), and a write given ``expected_version`` fails with
:class:`ConcurrentWriteError` when another commit landed after that version.

Importing this package does not import pyspark: the Spark-free readers
(:mod:`~interest_lib.storage.snapshot`, :mod:`~interest_lib.storage.arrays`,
:mod:`~interest_lib.storage.arrow_snapshot`, :mod:`~interest_lib.storage.catalog`) live beside
it, and :class:`Tables` / :func:`choose_engine` are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interest_lib.storage.catalog import TABLES, table_path
from interest_lib.storage.engine import (
    ConcurrentWriteError, SchemaMismatchError, TableError, TableNotFoundError, Txn, WriteResult,
)
from interest_lib.storage.locks import WriterLockTimeout

if TYPE_CHECKING:
    from interest_lib.storage.tables import Tables, choose_engine

__all__ = [
    "Tables", "Txn", "WriteResult", "TableError", "TableNotFoundError", "SchemaMismatchError",
    "ConcurrentWriteError", "WriterLockTimeout", "TABLES", "table_path", "choose_engine",
]

_LAZY = {"Tables", "choose_engine"}  # need pyspark: imported on first use


def __getattr__(name: str):
    if name in _LAZY:
        from interest_lib.storage import tables

        return getattr(tables, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
