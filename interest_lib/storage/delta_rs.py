"""Delta tables without the Delta jars: Spark writes Parquet, delta-rs commits once on the driver.

Write: executors write the DataFrame as Parquet into a staging folder inside the table
(``_staging/<host>_<pid>-<uuid>``, ignored by Delta readers because of the leading underscore;
the next write removes those of killed writers); the driver
validates the files, moves them into the table folder under unique names, and commits all of
them (plus any removes) as one Delta transaction with ``create_write_transaction``. Nothing is
visible before that commit, so a failed write leaves the previous version intact.

Concurrency (optimistic): delta-rs' own conflict check lets two writers that remove the same
files both commit (measured: a stale overwrite retried on top of a newer version kept the newer
files, i.e. duplicates). So every write that is not a blind append is pinned to the *base*
version it was computed from (the caller's ``expected_version``, else the version the engine
read for its removes / merge): the commit is built on that snapshot with
``max_commit_retries=0``, so it lands exactly at base + 1 or fails when any commit got there
first (the log's put-if-absent decides), and the failure is raised as
:class:`ConcurrentWriteError` with this write's files deleted. Blind appends without an
``expected_version`` keep delta-rs' retries: they conflict with nothing.

Read: the snapshot's live files (listed by :mod:`interest_lib.storage.snapshot`, the storage
layer's one snapshot reader) are handed to Spark's Parquet reader with the table schema;
partition columns come back from the Hive-style folder names.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import time
import uuid
from typing import Optional, Sequence
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, functions as F
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from interest_lib.logs import get_logger
from interest_lib.storage.engine import (
    ConcurrentWriteError, DeltaEngine, TableError, TableNotFoundError, WriteResult,
    check_same_schema, merge_partitions, stale_read_message,
)
from interest_lib.storage.contracts import check_write, columns_to_add
from interest_lib.storage.faults import commit_boundary
from interest_lib.storage.snapshot import Snapshot, open_snapshot

log = get_logger(__name__)

_FILE_COL = "__delta_source_file"
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def _to_arrow_schema_utc(schema):
    """``to_arrow_schema`` with UTC timestamps: ``timezone="UTC"`` from pyspark 4.1 on,
    ``timestamp_utc=True`` on pyspark 4.0 (the card environment, see scripts/install_card_env.sh)."""
    try:
        return to_arrow_schema(schema, timezone="UTC")
    except TypeError:
        return to_arrow_schema(schema, timestamp_utc=True)


def _local(path: str) -> str:
    if path.startswith("file://"):
        return unquote(path[len("file://"):])
    if "://" in path:
        raise TableError(
            f"{path}: the delta-rs engine writes to local or mounted paths only; use "
            "storage.engine=delta-spark (Delta jars) for object stores"
        )
    return path


def _stat_value(value) -> object:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


#: A staging folder's name starts with its writer: host and process id, so that the next write
#: can tell the folder of a killed writer (removed) from a live writer's (kept).
_STAGING_OWNER = f"{socket.gethostname()}_{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(local: str) -> list[str]:
    """Delete the ``_staging`` folders under table folder ``local`` left by writers of this host
    whose process is gone (killed between staging and commit); return the paths removed.
    A live writer's folder, and folders of other hosts, are kept."""
    root = os.path.join(local, "_staging")
    host = socket.gethostname()
    removed = []
    for name in os.listdir(root) if os.path.isdir(root) else []:
        owner_host, sep, rest = name.rpartition("_")
        pid = rest.split("-", 1)[0]
        if sep and owner_host == host and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            removed.append(os.path.join(root, name))
    if removed:
        log.warning("%s: removed %d staging folder(s) left by killed writers", local, len(removed))
    return removed


def file_stats(path: str) -> tuple[int, str]:
    """Row count and Delta ``stats`` JSON (numRecords, min/max/nullCount) of one Parquet file."""
    meta = pq.ParquetFile(path).metadata
    mins: dict = {}
    maxs: dict = {}
    nulls: dict = {}
    schema = meta.schema.to_arrow_schema()
    for col_idx, fld in enumerate(schema):
        if not (pa.types.is_integer(fld.type) or pa.types.is_floating(fld.type)
                or pa.types.is_timestamp(fld.type) or pa.types.is_date(fld.type)):
            continue
        lo = hi = None
        nc = 0
        complete = True
        for rg in range(meta.num_row_groups):
            stats = meta.row_group(rg).column(col_idx).statistics
            if stats is None or not stats.has_min_max:
                if meta.row_group(rg).num_rows:
                    complete = False
                nc += stats.null_count if stats is not None and stats.has_null_count else 0
                continue
            lo = stats.min if lo is None else min(lo, stats.min)
            hi = stats.max if hi is None else max(hi, stats.max)
            nc += stats.null_count if stats.has_null_count else 0
        nulls[fld.name] = nc
        if complete and lo is not None:
            mins[fld.name] = _stat_value(lo)
            maxs[fld.name] = _stat_value(hi)
    stats = {"numRecords": meta.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}
    return meta.num_rows, json.dumps(stats)


def _partition_text(value) -> Optional[str]:
    """A typed partition value as Delta writes it in the log (dates ISO, others str)."""
    if value is None:
        return None
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _partition_values(rel_dir: str, partition_by: Sequence[str]) -> dict:
    values: dict = {}
    for part in [p for p in rel_dir.split("/") if p]:
        key, _, raw = part.partition("=")
        raw = unquote(raw)
        values[key] = None if raw == _HIVE_NULL else raw
    missing = set(partition_by) - set(values)
    if missing:
        raise TableError(f"staged file under {rel_dir!r} lacks partition values for {missing}")
    return values


class DeltaRsEngine(DeltaEngine):
    """Delta tables committed by delta-rs from Parquet files written by Spark."""

    name = "delta-rs"

    # --- reading ---------------------------------------------------------------------------
    def _table(self, path: str, version: Optional[int] = None):
        from deltalake import DeltaTable

        local = _local(path)
        if not DeltaTable.is_deltatable(local):
            raise TableNotFoundError(f"no Delta table at {local}")
        return DeltaTable(local, version=version) if version is not None else DeltaTable(local)

    def exists(self, path: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(_local(path))

    def _snapshot(self, path: str, version: Optional[int] = None) -> Snapshot:
        local = _local(path)
        if not self.exists(local):
            raise TableNotFoundError(f"no Delta table at {local}")
        return open_snapshot(local, version, check_readable=False)

    def spark_schema(self, path: str, version: Optional[int] = None):
        """The table schema as a Spark StructType."""
        return from_arrow_schema(self._snapshot(path, version).schema)

    def live_files(self, path: str, version: Optional[int] = None) -> list[str]:
        """Relative paths of the snapshot's live data files (as the log records them)."""
        return [f.log_path for f in self._snapshot(path, version).files]

    def read(self, path: str, version: Optional[int] = None) -> DataFrame:
        local = _local(path)
        snapshot = self._snapshot(local, version)  # one snapshot for both the schema and the files
        return self._read_files(local, snapshot, snapshot.files)

    def _read_files(self, local: str, snapshot: Snapshot, files) -> DataFrame:
        """``files`` of ``snapshot`` (SnapshotFile) as a DataFrame with the table's schema."""
        schema = from_arrow_schema(snapshot.schema)
        if not files:
            return self.spark.createDataFrame([], schema)
        df = self.spark.read.schema(schema).option("basePath", local).parquet(*[f.path for f in files])
        return df.select(*schema.fieldNames())  # partition columns back in table order

    def version(self, path: str) -> int:
        return self._table(path).version()

    def history(self, path: str) -> list[dict]:
        return [
            {"version": h.get("version"), "timestamp": h.get("timestamp"),
             "operation": h.get("operation"), "parameters": h.get("operationParameters", {}),
             "metadata": {k: v for k, v in h.items() if k.startswith("interest.")}}
            for h in self._table(path).history()
        ]

    def txn_version(self, path: str, app_id: str) -> Optional[int]:
        if not self.exists(path):
            return None
        return self._table(path).transaction_version(app_id)

    # --- writing ---------------------------------------------------------------------------
    def _stage(self, df: DataFrame, local: str, partition_by: Sequence[str]):
        """Write ``df`` as Parquet into a staging folder; return (staging dir, files)."""
        remove_stale_staging(local)
        staging = os.path.join(local, "_staging", f"{_STAGING_OWNER}-{uuid.uuid4().hex}")
        writer = df.write.mode("overwrite").option("compression", "snappy")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.parquet(staging)
        files = []
        for root, _dirs, names in os.walk(staging):
            for fname in names:
                if fname.endswith(".parquet"):
                    files.append(os.path.relpath(os.path.join(root, fname), staging))
        return staging, sorted(files)

    def _base_version(self, local: str, name: str, expected: Optional[int]) -> int:
        """The version this write builds on (-1: no table yet); checks ``expected`` first."""
        current = self._table(local).version() if self.exists(local) else -1
        if expected is not None and current != expected:
            raise ConcurrentWriteError(stale_read_message(name, expected, current))
        return current

    def _evolve(self, local: str, name: str, base: int) -> int:
        """Add the contract's ``added`` columns the table at ``base`` lacks (one commit, before
        the write's own); returns the version the write builds on (``base`` when nothing was
        added)."""
        from deltalake import Schema as DeltaSchema
        from deltalake.transaction import CommitProperties
        from pyspark.sql.types import StructType

        if base < 0:
            return base
        new = columns_to_add(name, self.spark_schema(local, base).fields)
        if not new:
            return base
        spark_fields = StructType.fromDDL(", ".join(f"`{c}` {t}" for c, t in new))
        fields = DeltaSchema.from_arrow(_to_arrow_schema_utc(spark_fields)).fields
        self._table(local, base).alter.add_columns(fields, commit_properties=CommitProperties(
            custom_metadata={"interest.operation": "add-columns", "interest.table": name},
            max_commit_retries=0))
        found = self.version(local)
        if found != base + 1:
            raise ConcurrentWriteError(stale_read_message(name, base + 1, found))
        log.info("%s: schema evolved, added columns %s (version %d)", name, [c for c, _ in new], found)
        return found

    def _check_schema(self, df: DataFrame, local: str, name: str, base: int) -> None:
        if base >= 0:
            check_same_schema(name, df.schema, self.spark_schema(local, base))

    def _adds(self, staging: str, local: str, files: list[str], partition_by: Sequence[str]):
        from deltalake.transaction import AddAction

        prefix = uuid.uuid4().hex[:12]
        adds, moved, rows = [], [], 0
        now_ms = int(time.time() * 1000)
        for rel in files:
            rel_dir, fname = os.path.split(rel)
            target_rel = os.path.join(rel_dir, f"part-{prefix}-{fname.removeprefix('part-')}")
            src, dst = os.path.join(staging, rel), os.path.join(local, target_rel)
            n, stats = file_stats(src)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.replace(src, dst)
            moved.append(dst)
            rows += n
            adds.append(AddAction(
                target_rel, os.path.getsize(dst), _partition_values(rel_dir, partition_by),
                now_ms, True, stats,
            ))
        return adds, moved, rows

    def _commit(self, local, df_schema, adds, removes, mode, partition_by, txn, name, operation,
                base, pinned):
        """Commit adds + removes on top of version ``base``; with ``pinned`` only as base + 1."""
        from deltalake import Schema as DeltaSchema
        from deltalake.transaction import (
            CommitProperties, Transaction, create_table_with_add_actions,
        )

        metadata = {"interest.operation": operation, "interest.table": name}
        if txn:
            metadata["interest.txn"] = txn.app_id  # lets a rerun find the version it committed
        props = CommitProperties(
            custom_metadata=metadata,
            app_transactions=[Transaction(txn.app_id, txn.version)] if txn else None,
            max_commit_retries=0 if pinned else None,
        )
        arrow_schema = _to_arrow_schema_utc(df_schema)
        commit_boundary(name, "before")  # test hook (storage/faults.py): files moved, log not written
        try:
            if base < 0:
                create_table_with_add_actions(
                    local, DeltaSchema.from_arrow(arrow_schema), adds, mode="error",
                    partition_by=list(partition_by) or None, name=name, commit_properties=props,
                )
            else:
                table = self._table(local, base) if pinned else self._table(local)
                table.create_write_transaction(
                    removes + adds, mode=mode, schema=DeltaSchema.from_arrow(arrow_schema),
                    partition_by=list(partition_by) or None, commit_properties=props,
                )
        except Exception as exc:
            found = self.version(local) if self.exists(local) else -1
            if found != base and (pinned or base < 0):
                raise ConcurrentWriteError(stale_read_message(name, base, found)) from exc
            raise
        commit_boundary(name, "after")
        return self.version(local)

    def _write_files(self, df, local, partition_by, txn, name, operation, mode, removes_for,
                     base, pinned):
        """Stage df, build removes with ``removes_for(adds)``, commit; clean up on failure."""
        os.makedirs(local, exist_ok=True)
        staging, files = self._stage(df, local, partition_by)
        moved: list[str] = []
        try:
            adds, moved, rows = self._adds(staging, local, files, partition_by)
            removes = removes_for(adds)
            version = self._commit(
                local, df.schema, adds, removes, mode, partition_by, txn, name, operation,
                base, pinned,
            )
        except BaseException:
            for path in moved:  # unreferenced files: remove them so they never look live
                if os.path.exists(path):
                    os.remove(path)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            staging_root = os.path.dirname(staging)
            if os.path.isdir(staging_root) and not os.listdir(staging_root):
                os.rmdir(staging_root)
        return WriteResult(name, version, False, len(adds), len(removes), rows)

    def _removes(self, local: str, keep, base: int) -> list:
        """RemoveActions for the live files of version ``base`` for which
        ``keep(path, partition_values)`` is False."""
        from deltalake.transaction import RemoveAction

        if base < 0:
            return []
        now_ms = int(time.time() * 1000)
        removes = []
        for live in self._snapshot(local, base).files:
            pvalues = {k: _partition_text(v) for k, v in live.partition.items()}
            if not keep(live.log_path, pvalues):
                removes.append(RemoveAction(live.log_path, True, now_ms, live.size, pvalues))
        return removes

    def write(self, df, path, mode, partition_by, txn, name, expected_version=None) -> WriteResult:
        local = _local(path)
        check_write(name, df.schema, partition_by)
        base = self._evolve(local, name, self._base_version(local, name, expected_version))
        self._check_schema(df, local, name, base)
        # Only a blind append (no removes, computed from no read of the table) may be retried
        # by delta-rs on top of a newer version; anything else must land at base + 1.
        pinned = mode != "append" or expected_version is not None
        if mode == "append":
            return self._write_files(df, local, partition_by, txn, name, "append", "append",
                                     lambda adds: [], base, pinned)
        if mode == "overwrite":  # delta-rs removes the pinned snapshot's files itself
            return self._write_files(df, local, partition_by, txn, name, "overwrite", "overwrite",
                                     lambda adds: [], base, pinned)
        # overwrite-partitions: remove exactly the live files of the partitions being written.
        def removes_for(adds):
            touched = {tuple(sorted(a.partition_values.items())) for a in adds}
            return self._removes(local, lambda _p, pv: tuple(sorted(pv.items())) not in touched,
                                 base)
        return self._write_files(df, local, partition_by, txn, name, "overwrite-partitions",
                                 "append", removes_for, base, pinned)

    def merge(self, source, path, keys, delete_flag, partition_by, txn, name,
              expected_version=None) -> WriteResult:
        """Copy-on-write MERGE: rewrite only the files that hold a matching key, looked for only
        in the partitions the source holds when the keys include the partition columns."""
        local = _local(path)
        check_write(name, source.drop(delete_flag).schema if delete_flag else source.schema, partition_by)
        upserts = source.filter(~F.col(delete_flag)).drop(delete_flag) if delete_flag else source
        base = self._base_version(local, name, expected_version)
        if base < 0:
            return self.write(upserts, local, "append", partition_by, txn, name, base)
        base = self._evolve(local, name, base)
        # before any work, and before the select below
        self._check_schema(upserts, local, name, base)
        snapshot = self._snapshot(local, base)
        target = self._read_files(local, snapshot, snapshot.select_partitions(
            merge_partitions(source, keys, partition_by))).withColumn(_FILE_COL, F.input_file_name())
        source_keys = source.select(*keys).distinct()
        touched_uris = [
            r[0] for r in target.join(source_keys, list(keys), "left_semi")
            .select(_FILE_COL).distinct().collect()
        ]
        touched_rel = {
            os.path.relpath(_local(unquote(u)), local) for u in touched_uris
        }
        kept = (
            target.filter(F.col(_FILE_COL).isin(touched_uris))
            .join(source_keys, list(keys), "left_anti")
            .drop(_FILE_COL)
        )
        merged = kept.unionByName(upserts.select(*kept.columns))
        return self._write_files(
            merged, local, partition_by, txn, name, "merge", "append",
            lambda adds: self._removes(local, lambda p, _pv: unquote(p) not in touched_rel, base),
            base, True,
        )

    # --- maintenance -----------------------------------------------------------------------
    def optimize(self, path: str, zorder_by: Sequence[str] = ()) -> dict:
        """Compact small files (and Z-order by ``zorder_by``) with delta-rs' optimizer, one
        commit; returns files removed / added."""
        table = self._table(path)
        props = _maintenance_props("optimize")
        if zorder_by:
            metrics = table.optimize.z_order(list(zorder_by), commit_properties=props)
        else:
            metrics = table.optimize.compact(commit_properties=props)
        return {"files_removed": int(metrics.get("numFilesRemoved", 0)),
                "files_added": int(metrics.get("numFilesAdded", 0))}

    def vacuum(self, path: str, retention_hours: float) -> int:
        """Delete files no version within ``retention_hours`` needs; returns how many."""
        table = self._table(path)
        deleted = table.vacuum(retention_hours=int(retention_hours), dry_run=False,
                               enforce_retention_duration=False,
                               commit_properties=_maintenance_props("vacuum"))
        return len(deleted)


def _maintenance_props(operation: str):
    from deltalake.transaction import CommitProperties

    return CommitProperties(custom_metadata={"interest.operation": operation})
