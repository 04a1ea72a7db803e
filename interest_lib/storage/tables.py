"""The Delta table API every job uses: :class:`Tables` (see :mod:`interest_lib.storage`)."""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Sequence

from pyspark.sql import DataFrame, SparkSession

from interest_lib.conf import StorageConf
from interest_lib.logs import get_logger
from interest_lib.storage.catalog import table_path
from interest_lib.storage.engine import WRITE_MODES, DeltaEngine, TableError, Txn, WriteResult
from interest_lib.storage.locks import writer_locks

__all__ = ["Tables", "choose_engine"]

log = get_logger(__name__)


def choose_engine(spark: SparkSession, engine: str = "auto") -> DeltaEngine:
    """The engine named in conf, or for ``auto`` delta-spark when its jars are loaded."""
    from interest_lib.spark import delta_jars_available

    if engine == "auto":
        engine = "delta-spark" if delta_jars_available(spark) else "delta-rs"
    if engine == "delta-spark":
        if not delta_jars_available(spark):
            raise TableError(
                "storage.engine=delta-spark but the Delta jars are not on the classpath: submit "
                "with --packages io.delta:delta-spark_2.13:<version> or use storage.engine=auto"
            )
        from interest_lib.storage.delta_spark import DeltaSparkEngine

        return DeltaSparkEngine(spark)
    from interest_lib.storage.delta_rs import DeltaRsEngine

    return DeltaRsEngine(spark)


class Tables:
    """Read, write, merge and inspect the project's Delta tables by name (``layer.table``)."""

    def __init__(self, spark: SparkSession, conf: StorageConf, engine: Optional[DeltaEngine] = None):
        self.spark = spark
        self.conf = conf
        self.engine = engine or choose_engine(spark, conf.engine)
        log.info("Delta engine: %s, warehouse: %s", self.engine.name, conf.warehouse)

    def path(self, name: str) -> str:
        """Folder or URI of table ``name``."""
        return table_path(self.conf.warehouse, name)

    def exists(self, name: str) -> bool:
        """True when the table has been created."""
        return self.engine.exists(self.path(name))

    def read(self, name: str, version: Optional[int] = None) -> DataFrame:
        """The table as a DataFrame, at ``version`` (time travel) or the latest."""
        return self.engine.read(self.path(name), version)

    def version(self, name: str) -> int:
        """Latest committed version of the table."""
        return self.engine.version(self.path(name))

    def version_or_missing(self, name: str) -> int:
        """Latest committed version, or -1 when the table does not exist yet (the
        ``expected_version`` of a write that creates it)."""
        return self.version(name) if self.exists(name) else -1

    @contextlib.contextmanager
    def writer_lock(self, *names: str, job: str) -> Iterator[None]:
        """Hold the writer locks of tables ``names`` for a job's read-compute-commit.

        On a local warehouse a second job wanting one of them waits up to
        ``storage.lock_timeout_seconds``, then stops with :class:`WriterLockTimeout` naming the
        holder; re-entrant in one thread; no lock on object stores or with
        ``storage.writer_lock: false``.
        """
        if not self.conf.writer_lock:
            yield
            return
        with writer_locks(self.conf.warehouse, names, job, self.conf.lock_timeout_seconds):
            yield

    def history(self, name: str) -> list[dict]:
        """Commit history, newest first."""
        return self.engine.history(self.path(name))

    def write(
        self, df: DataFrame, name: str, mode: str = "append", partition_by: Sequence[str] = (),
        txn: Optional[Txn] = None, expected_version: Optional[int] = None,
    ) -> WriteResult:
        """Commit ``df`` to table ``name`` in one atomic transaction.

        Args:
            df: rows to write.
            name: ``layer.table``.
            mode: ``append`` | ``overwrite`` (whole table) | ``overwrite-partitions`` (replace
                only the partitions present in ``df``).
            partition_by: partition columns (used when the table is created).
            txn: idempotency token; a write whose (app_id, version) was already committed is
                skipped and reported as such, so a rerun never duplicates rows.
            expected_version: the table version ``df`` was computed from (-1: no table yet);
                if another commit landed since, :class:`ConcurrentWriteError` and nothing
                committed. None: no check (blind appends, or whole-table results of other tables).

        Returns:
            :class:`WriteResult` with the table version.
        """
        if mode not in WRITE_MODES:
            raise ValueError(f"write mode {mode!r} not in {WRITE_MODES}")
        if mode == "overwrite-partitions" and not partition_by:
            raise ValueError(f"{name}: overwrite-partitions needs partition_by")
        skipped = self._already_committed(name, txn)
        if skipped:
            return skipped
        result = self.engine.write(df, self.path(name), mode, tuple(partition_by), txn, name,
                                   expected_version)
        log.info("%s: %s committed as version %s (%s rows)", name, mode, result.version,
                 "?" if result.rows_written is None else f"{result.rows_written:,}")
        return result

    def merge(
        self, source: DataFrame, name: str, keys: Sequence[str], delete_flag: Optional[str] = None,
        partition_by: Sequence[str] = (), txn: Optional[Txn] = None,
        expected_version: Optional[int] = None,
    ) -> WriteResult:
        """MERGE ``source`` into ``name`` by ``keys`` in one transaction.

        Matching rows are replaced, new rows inserted; where ``delete_flag`` names a boolean
        column of ``source``, rows with it true delete their match instead (and are not inserted).
        ``expected_version`` as in :meth:`write` (the version ``source`` was computed from).
        """
        skipped = self._already_committed(name, txn)
        if skipped:
            return skipped
        result = self.engine.merge(
            source, self.path(name), tuple(keys), delete_flag, tuple(partition_by), txn, name,
            expected_version,
        )
        log.info("%s: merge committed as version %s", name, result.version)
        return result

    def rows_after_overwrite(self, result: WriteResult) -> int:
        """Rows an overwrite left in the table: from the committed files' stats when the engine
        reports them, else by counting the table."""
        return result.rows_written if result.rows_written is not None else self.read(result.table).count()

    def live_files(self, name: str, version: Optional[int] = None) -> list[str]:
        """Relative paths of the table's live data files (at ``version``, default latest)."""
        return self.engine.live_files(self.path(name), version)

    def optimize(self, name: str, zorder_by: Sequence[str] = ()) -> dict:
        """Compact the table's small files, Z-ordered by ``zorder_by`` when given, in one
        commit (rows unchanged; older versions stay readable until vacuumed)."""
        return self.engine.optimize(self.path(name), tuple(zorder_by))

    def vacuum(self, name: str, retention_hours: float) -> int:
        """Delete the data files no version younger than ``retention_hours`` needs; returns
        how many were deleted (time travel to versions older than that stops working)."""
        return self.engine.vacuum(self.path(name), retention_hours)

    def txn_version(self, name: str, app_id: str) -> Optional[int]:
        """Latest version committed by idempotent writer ``app_id`` (None if never)."""
        return self.engine.txn_version(self.path(name), app_id)

    def committed_version(self, name: str, app_id: str) -> Optional[int]:
        """The table version whose commit carried writer ``app_id`` (newest), or None: read
        from the commit metadata the delta-rs engine records (``interest.txn``)."""
        if not self.exists(name):
            return None
        for entry in self.history(name):
            if entry.get("metadata", {}).get("interest.txn") == app_id:
                return entry["version"]
        return None

    def _already_committed(self, name: str, txn: Optional[Txn]) -> Optional[WriteResult]:
        if txn is None:
            return None
        seen = self.engine.txn_version(self.path(name), txn.app_id)
        if seen is not None and seen >= txn.version:
            version = self.version(name)
            log.warning("%s: %s v%s already committed; write skipped (table stays at version %s)",
                        name, txn.app_id, txn.version, version)
            return WriteResult(name, version, skipped=True)
        return None
