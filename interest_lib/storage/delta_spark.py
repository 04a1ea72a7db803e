"""Delta tables through the Delta Lake data source (clusters and Databricks, where the jars are).

Idempotent appends use Delta's own app transactions (``txnAppId`` / ``txnVersion``); partition
replacement uses dynamic partition overwrite; MERGE uses ``DeltaTable.merge``. Concurrent commits
are checked by Delta's own optimistic concurrency; ``expected_version`` (the version a job computed
its write from) is checked before the write starts.
"""

from __future__ import annotations

from typing import Optional

from pyspark.sql import DataFrame, functions as F

from interest_lib.storage.engine import (
    ConcurrentWriteError, DeltaEngine, TableNotFoundError, WriteResult, stale_read_message,
)
from interest_lib.storage.contracts import check_write
from interest_lib.storage.faults import commit_boundary


class DeltaSparkEngine(DeltaEngine):
    """The Delta data source of the JVM (``io.delta``), via the delta-spark Python API."""

    name = "delta-spark"

    def _delta_table(self, path: str):
        from delta.tables import DeltaTable

        if not DeltaTable.isDeltaTable(self.spark, path):
            raise TableNotFoundError(f"no Delta table at {path}")
        return DeltaTable.forPath(self.spark, path)

    def exists(self, path: str) -> bool:
        from delta.tables import DeltaTable

        return DeltaTable.isDeltaTable(self.spark, path)

    def read(self, path: str, version: Optional[int] = None) -> DataFrame:
        if not self.exists(path):
            raise TableNotFoundError(f"no Delta table at {path}")
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(path)

    def _check_expected(self, path: str, name: str, expected: Optional[int]) -> None:
        if expected is None:
            return
        current = self.version(path) if self.exists(path) else -1
        if current != expected:
            raise ConcurrentWriteError(stale_read_message(name, expected, current))

    def write(self, df, path, mode, partition_by, txn, name, expected_version=None) -> WriteResult:
        check_write(name, df.schema, partition_by)
        self._check_expected(path, name, expected_version)
        writer = df.write.format("delta").option("userMetadata", f"interest:{name}:{mode}")
        if txn:
            writer = writer.option("txnAppId", txn.app_id).option("txnVersion", txn.version)
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        if mode == "overwrite-partitions":
            writer = writer.mode("overwrite").option("partitionOverwriteMode", "dynamic")
        else:
            writer = writer.mode(mode)
        commit_boundary(name, "before")  # test hook (storage/faults.py)
        writer.save(path)
        commit_boundary(name, "after")
        return WriteResult(name, self.version(path))

    def merge(self, source, path, keys, delete_flag, partition_by, txn, name,
              expected_version=None) -> WriteResult:
        check_write(name, source.drop(delete_flag).schema if delete_flag else source.schema, partition_by)
        self._check_expected(path, name, expected_version)
        if not self.exists(path):
            upserts = source.filter(~F.col(delete_flag)).drop(delete_flag) if delete_flag else source
            return self.write(upserts, path, "append", partition_by, txn, name)
        condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
        table = self._delta_table(path)
        columns = [c for c in source.columns if c != delete_flag]
        assignments = {f"`{c}`": f"s.`{c}`" for c in columns}
        builder = table.alias("t").merge(source.alias("s"), condition)
        if delete_flag:
            builder = (
                builder.whenMatchedDelete(condition=f"s.`{delete_flag}`")
                .whenMatchedUpdate(set=assignments)
                .whenNotMatchedInsert(condition=f"NOT s.`{delete_flag}`", values=assignments)
            )
        else:
            builder = builder.whenMatchedUpdate(set=assignments).whenNotMatchedInsert(values=assignments)
        commit_boundary(name, "before")
        builder.execute()
        commit_boundary(name, "after")
        return WriteResult(name, self.version(path))

    def version(self, path: str) -> int:
        return int(self._delta_table(path).history(1).select("version").first()[0])

    def history(self, path: str) -> list[dict]:
        rows = self._delta_table(path).history().orderBy(F.desc("version")).collect()
        return [
            {"version": r["version"], "timestamp": r["timestamp"], "operation": r["operation"],
             "parameters": r["operationParameters"], "metadata": {"userMetadata": r["userMetadata"]}}
            for r in rows
        ]

    def txn_version(self, path: str, app_id: str) -> Optional[int]:
        # Delta skips the write itself when the txn version was seen; we cannot query it here.
        return None
