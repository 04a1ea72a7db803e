"""A test hook at every Delta commit: record the commits a job makes, or SIGKILL it at one.

Both engines call :func:`commit_boundary` right before and right after each table commit
(delta-rs: after the data files are moved into the table folder and before the log entry is
written, then after it is written; delta-spark: around the save / MERGE that commits). Two
environment variables drive it; unset (production), the hook costs two environment lookups
per commit:

``INTEREST_COMMIT_LOG=<file>``
    append one JSON line per boundary: ``{"phase": "before"|"after", "table": name, "n": k,
    "pid": ...}`` where ``k`` counts this process's commits to ``table`` (1-based). A test runs a
    job once this way to enumerate the boundaries it crosses.

``INTEREST_KILL_AT=<phase>:<table>:<n>``
    the process sends itself SIGKILL at that boundary, e.g. ``after:bronze.events:1`` (no
    cleanup, no ``finally``, no atexit: what an OOM killer or a lost node does). ``<table>`` may
    be ``*`` to count every commit of the process.

``INTEREST_COMMIT_SNAPSHOTS=<dir>`` (with ``INTEREST_COMMIT_SNAPSHOT_OF=<warehouse>``)
    at every boundary, copy the warehouse folder to ``<dir>/<phase>:<table>:<n>``: the files a
    SIGKILL at that boundary would leave on disk (the hook runs in the committing thread, after
    the data files are in place and before / after the log entry), taken from one run instead
    of one killed process per boundary.

Used by tests/integration/test_kill_boundaries.py: each job is killed at each boundary (for real
at one of them per job, from the snapshots at the others), rerun without the hook, and must end
with the tables of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections import Counter

LOG_ENV = "INTEREST_COMMIT_LOG"
KILL_ENV = "INTEREST_KILL_AT"
SNAPSHOT_ENV = "INTEREST_COMMIT_SNAPSHOTS"
SNAPSHOT_OF_ENV = "INTEREST_COMMIT_SNAPSHOT_OF"
PHASES = ("before", "after")

_counts: Counter = Counter()  # commits begun per table in this process ("*": all tables)


def parse_kill_at(text: str) -> tuple[str, str, int]:
    """``before|after:<table>:<n>`` -> (phase, table, n); a ValueError names the variable."""
    phase, sep, rest = text.partition(":")
    table, sep2, n = rest.rpartition(":")
    if not (sep and sep2) or phase not in PHASES or not table or not n.isdigit() or int(n) < 1:
        raise ValueError(f"{KILL_ENV}={text!r}: expected before|after:<table>:<n> with n >= 1, "
                         "e.g. after:bronze.events:1")
    return phase, table, int(n)


def boundary_name(phase: str, table: str, n: int) -> str:
    """``<phase>:<table>:<n>``, the form :data:`KILL_ENV` takes and the commit log's fields make."""
    return f"{phase}:{table}:{n}"


def reset_counts() -> None:
    """Count commits from zero again: a second job recorded in the same process (a test's
    in-process run) numbers its boundaries as a fresh process would."""
    _counts.clear()


def commit_boundary(table: str, phase: str) -> None:
    """Called by the engines right ``before`` and right ``after`` each commit to ``table``.

    Does nothing unless :data:`LOG_ENV` or :data:`KILL_ENV` is set (see the module docstring).
    """
    log_path, kill_at = os.environ.get(LOG_ENV), os.environ.get(KILL_ENV)
    snapshots = os.environ.get(SNAPSHOT_ENV)
    if not (log_path or kill_at or snapshots):
        return
    if phase == "before":
        _counts[table] += 1
        _counts["*"] += 1
    n, n_all = _counts[table], _counts["*"]
    if log_path:
        with open(log_path, "a") as fh:
            fh.write(json.dumps({"phase": phase, "table": table, "n": n, "pid": os.getpid()}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    if snapshots:
        warehouse = os.environ.get(SNAPSHOT_OF_ENV)
        if not warehouse:
            raise ValueError(f"{SNAPSHOT_ENV} is set but {SNAPSHOT_OF_ENV} (the warehouse to copy) is not")
        shutil.copytree(warehouse, os.path.join(snapshots, boundary_name(phase, table, n)), symlinks=True)
    if kill_at:
        want_phase, want_table, want_n = parse_kill_at(kill_at)
        seen = n_all if want_table == "*" else n
        if phase == want_phase and want_table in ("*", table) and seen == want_n:
            os.kill(os.getpid(), signal.SIGKILL)
