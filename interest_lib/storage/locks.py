"""Writer locks: one job at a time writes a table of a local warehouse.

A job that reads tables, computes and commits (ingest: existing event ids and the batch number;
sessionize: the stored sessions it replaces) must not interleave with another job writing the
same tables, or both commit results computed from the same old state. On a local (or mounted)
warehouse each table has a lock file ``<warehouse>/_locks/<layer.table>.lock``; a job holds an
exclusive ``flock`` on the lock files of the tables it writes from its first read to its last
commit. The lock goes with the process: a killed job leaves no stale lock.

``flock`` locks belong to an open file, so two threads of one process exclude each other too;
the same thread taking a lock it already holds is a no-op (re-entrant), so nested jobs
(``interest run``) do not wait for themselves.

Object-store warehouses (``s3://``, ``abfss://``, ``dbfs:``) take no lock: there the Delta data
source's optimistic concurrency refuses conflicting commits, and the delta-rs engine's own
version check (:mod:`interest_lib.storage.delta_rs`) refuses stale ones everywhere.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import socket
import threading
import time
from typing import Iterator, Sequence

from interest_lib.logs import get_logger
from interest_lib.storage.engine import TableError

log = get_logger(__name__)

LOCK_DIR = "_locks"
_POLL_SECONDS = 0.2
_held = threading.local()  # per thread: {lock file path: (fd, depth)}


class WriterLockTimeout(TableError):
    """Another writer held a table's lock for longer than ``storage.lock_timeout_seconds``."""


def lock_file(warehouse: str, name: str) -> str:
    """The lock file of table ``name`` under a local ``warehouse``."""
    return os.path.join(os.path.abspath(warehouse), LOCK_DIR, f"{name}.lock")


def is_local(warehouse: str) -> bool:
    """True when ``warehouse`` is a local or mounted folder (where flock works)."""
    return "://" not in warehouse and not warehouse.startswith("dbfs:")


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 512).decode("utf-8", "replace").strip()
    return text or "unknown holder"


def _acquire(path: str, name: str, job: str, timeout: float) -> int:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    start = time.monotonic()
    waiting_logged = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                waited = time.monotonic() - start
                if waited >= timeout:
                    raise WriterLockTimeout(
                        f"{name}: another writer holds {path} ({holder}); {job} waited "
                        f"{waited:.1f} s (storage.lock_timeout_seconds={timeout:g}). Let it "
                        "finish and rerun, or raise storage.lock_timeout_seconds"
                    ) from None
                if not waiting_logged:
                    log.warning("%s: waiting for the writer lock %s, held by %s (up to %g s)",
                                name, path, holder, timeout)
                    waiting_logged = True
                time.sleep(min(_POLL_SECONDS, max(timeout - waited, 0.01)))
        info = (f"{job} pid {os.getpid()} on {socket.gethostname()} since "
                f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ}")
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        return fd
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def writer_locks(warehouse: str, names: Sequence[str], job: str, timeout: float) -> Iterator[None]:
    """Hold the writer locks of tables ``names`` (sorted, so two jobs never deadlock).

    Args:
        warehouse: the warehouse root; object-store URIs take no lock.
        names: ``layer.table`` names the caller will write.
        job: who holds the lock (shown to a writer that has to wait).
        timeout: seconds to wait for each lock before :class:`WriterLockTimeout`.
    """
    if not is_local(warehouse):
        yield
        return
    held = getattr(_held, "locks", None)
    if held is None:
        held = _held.locks = {}
    taken: list[str] = []
    try:
        for name in sorted(set(names)):
            path = lock_file(warehouse, name)
            if path in held:
                fd, depth = held[path]
                held[path] = (fd, depth + 1)
            else:
                held[path] = (_acquire(path, name, job, timeout), 1)
            taken.append(path)
        yield
    finally:
        for path in reversed(taken):
            fd, depth = held[path]
            if depth > 1:
                held[path] = (fd, depth - 1)
                continue
            del held[path]
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
