"""Read what the report needs from the warehouse at pinned versions, without Spark.

:func:`pin_versions` fixes one version per table (the run's, from its ``run.json``, else the
latest), and every read of :class:`ReportInputs` uses it, so the page shows one consistent
snapshot even while another job commits. A table that does not exist, cannot be read, or lacks
a column is recorded in ``missing`` with the reason and read as None: the page says so instead
of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import pandas as pd

from interest_lib.logs import get_logger
from interest_lib.storage.catalog import TABLES, table_path

log = get_logger(__name__)


@dataclass
class TableState:
    """One table as the report pins it."""

    name: str
    version: Optional[int] = None
    """The pinned version; None when the table does not exist."""
    rows: Optional[int] = None
    bytes: Optional[int] = None
    files: Optional[int] = None
    problem: str = ""
    """Why the table cannot be used ("" when it can)."""


def _open(path: str, version: Optional[int]):
    from interest_lib.storage.snapshot import open_snapshot

    return open_snapshot(path, version)


def table_state(warehouse: str, name: str, version: Optional[int] = None) -> TableState:
    """Version, rows, bytes and files of table ``name`` (at ``version``, None = latest), from its
    Delta log (add actions' sizes and record counts; the files' Parquet footers where a writer
    logged no record count); a missing or unreadable table says why."""
    from interest_lib.storage.snapshot import is_delta_table

    path = table_path(warehouse, name)
    try:
        if not is_delta_table(path):
            return TableState(name, problem=f"table {name} does not exist in {warehouse}")
        snap = _open(path, version)
        import pyarrow as pa

        actions = pa.table(snap.table.get_add_actions(flatten=True))
        if not actions.num_rows:
            rows = 0
        elif "num_records" in actions.column_names and actions["num_records"].null_count == 0:
            rows = int(pa.compute.sum(actions["num_records"]).as_py())
        else:  # a writer that logged no statistics: the Parquet footers hold the row counts
            rows = sum(unit.rows for unit in snap.row_groups(snap.files)[0])
        return TableState(name, snap.version, rows, sum(f.size or 0 for f in snap.files), len(snap.files))
    except Exception as exc:  # noqa: BLE001 - a broken table is reported on the page, not raised
        return TableState(name, version, problem=f"table {name} cannot be read: {type(exc).__name__}: {exc}")


def pin_versions(warehouse: str, versions: Optional[Mapping[str, int]] = None,
                 names: Sequence[str] = tuple(TABLES)) -> dict[str, TableState]:
    """Every catalog table's state at the given version (``versions[name]``; else the latest)."""
    versions = dict(versions or {})
    return {n: table_state(warehouse, n, versions.get(n)) for n in names}


@dataclass
class ReportInputs:
    """Tables read at their pinned versions; ``missing`` says what could not be read and why."""

    warehouse: str
    states: dict
    missing: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)

    def read(self, name: str, columns: Sequence[str],
             where: Optional[Mapping[str, object]] = None) -> Optional[pd.DataFrame]:
        """Columns of table ``name`` at its pinned version as pandas (None, with the reason in
        ``missing``, when the table is absent, unreadable or lacks a column); ``where``: partition
        values to read (see :meth:`Snapshot.read`). The same read twice is served once."""
        key = (name, tuple(columns), tuple(sorted((where or {}).items())))
        if key not in self._cache:
            self._cache[key] = self._read(name, columns, where)
        return self._cache[key]

    def _read(self, name, columns, where) -> Optional[pd.DataFrame]:
        state = self.states.get(name) or table_state(self.warehouse, name)
        if state.problem:
            self.missing[name] = state.problem
            return None
        try:
            snap = _open(table_path(self.warehouse, name), state.version)
            absent = [c for c in columns if c not in snap.schema.names]
            if absent:
                self.missing[name] = f"table {name} has no column {', '.join(absent)}"
                return None
            frame = snap.read(columns, where).to_pandas()
        except Exception as exc:  # noqa: BLE001 - reported on the page
            self.missing[name] = f"table {name} version {state.version} cannot be read: {type(exc).__name__}: {exc}"
            return None
        if frame.empty:
            self.missing.setdefault(name, f"table {name} is empty at version {state.version}")
        return frame

    def columns(self, name: str) -> list[str]:
        """Column names of table ``name`` at its pinned version ([] when absent or unreadable), so
        a section can read optional columns a table gained later (schema evolution) only when there."""
        state = self.states.get(name)
        if state is None or state.problem:
            return []
        try:
            return list(_open(table_path(self.warehouse, name), state.version).schema.names)
        except Exception:  # noqa: BLE001 - the read that follows reports the problem
            return []

    def latest_partition(self, name: str, column: str) -> Optional[object]:
        """The largest value of partition ``column`` of ``name`` at its pinned version (None when
        absent or empty)."""
        state = self.states.get(name)
        if state is None or state.problem:
            return None
        snap = _open(table_path(self.warehouse, name), state.version)
        values = [f.partition.get(column) for f in snap.files if f.partition.get(column) is not None]
        return max(values, key=str) if values else None
