"""Table maintenance (``interest optimize``): compact small files, Z-order by the columns readers
filter on, and vacuum files older than the retention in conf, on either engine.

Incremental jobs leave many small files (one per date partition and writer task per batch:
~680 in silver.events_sessionized at 10 M events); readers pay for every file they open. OPTIMIZE
rewrites them into few large files in one commit (the rows and the table's earlier versions
unchanged), Z-ordering clusters rows by ``user_id`` so that a reader of one user's events skips
most files by their min/max statistics; VACUUM then deletes the files no version younger than
``storage.vacuum_retention_hours`` still needs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from interest_lib.conf import ConfigError, StorageConf
from interest_lib.logs import get_logger
from interest_lib.storage.catalog import TABLES

log = get_logger(__name__)


@dataclass
class TableMaintenance:
    """What ``interest optimize`` did to one table."""

    table: str
    files_before: int
    files_after: int
    version_before: int
    version_after: int
    zorder_by: list[str] = field(default_factory=list)
    files_vacuumed: int = 0
    seconds: float = 0.0
    skipped: str = ""


@dataclass
class OptimizeReport:
    """Per-table results of one ``interest optimize`` run."""

    engine: str
    retention_hours: float
    tables: list[TableMaintenance] = field(default_factory=list)

    def summary(self) -> str:
        """One line per table: files before -> after, versions, files vacuumed."""
        lines = []
        for t in self.tables:
            if t.skipped:
                lines.append(f"{t.table}: skipped ({t.skipped})")
                continue
            z = f", Z-ordered by {', '.join(t.zorder_by)}" if t.zorder_by else ""
            lines.append(f"{t.table}: {t.files_before:,} -> {t.files_after:,} files{z} "
                         f"(version {t.version_before} -> {t.version_after}), "
                         f"{t.files_vacuumed:,} files vacuumed, {t.seconds:.1f} s")
        return "\n".join(lines)


def _columns(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def maintenance_plan(conf: StorageConf) -> list[tuple[str, list[str]]]:
    """(table, Z-order columns) for each table in ``storage.optimize_tables``. A Z-order entry
    for a catalog table not in that list is unused (conf files merge into the default entries);
    one for a table that is neither (a typo) is a configuration error naming it."""
    names = _columns(conf.optimize_tables)
    stray = sorted(set(conf.zorder_by) - set(names) - set(TABLES))
    if stray:
        raise ConfigError(f"storage.zorder_by names {stray}, neither a catalog table nor one storage.optimize_tables "
                         f"({conf.optimize_tables!r}) does not list")
    return [(name, _columns(str(conf.zorder_by.get(name, "")))) for name in names]


def optimize_tables(tables, conf: StorageConf, vacuum: bool = True) -> OptimizeReport:
    """Compact (and Z-order) every table of ``storage.optimize_tables``, then vacuum it with
    ``storage.vacuum_retention_hours``; a table that does not exist yet is reported as skipped.
    Each table is optimized under its writer lock, so no job writes it meanwhile."""
    report = OptimizeReport(tables.engine.name, conf.vacuum_retention_hours)
    for name, zorder in maintenance_plan(conf):
        if not tables.exists(name):
            report.tables.append(TableMaintenance(name, 0, 0, -1, -1, zorder, skipped="no table yet"))
            continue
        missing = sorted(set(zorder) - set(tables.read(name).columns))
        if missing:
            raise ConfigError(f"storage.zorder_by: table {name} has no column(s) {missing}")
        start = time.perf_counter()
        with tables.writer_lock(name, job="optimize"):
            files_before, version_before = len(tables.live_files(name)), tables.version(name)
            tables.optimize(name, zorder)
            vacuumed = tables.vacuum(name, conf.vacuum_retention_hours) if vacuum else 0
            entry = TableMaintenance(
                name, files_before, len(tables.live_files(name)), version_before,
                tables.version(name), zorder, vacuumed, time.perf_counter() - start)
        log.info("optimize %s: %d -> %d files, version %d -> %d, %d vacuumed (%.1f s)", name,
                 entry.files_before, entry.files_after, entry.version_before, entry.version_after,
                 entry.files_vacuumed, entry.seconds)
        report.tables.append(entry)
    return report
