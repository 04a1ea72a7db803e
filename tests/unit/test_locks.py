"""Writer locks on real lock files: a second writer waits or is refused with the holder named."""

import threading
import time

import pytest

from interest_lib.storage.locks import WriterLockTimeout, lock_file, writer_locks

pytestmark = pytest.mark.unit


def _hold_in_thread(warehouse, names, job, release: threading.Event, held: threading.Event):
    def body():
        with writer_locks(warehouse, names, job, timeout=5):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=body)
    thread.start()
    assert held.wait(5)
    return thread


def test_second_writer_is_refused_with_the_holder_named(tmp_path):
    release, held = threading.Event(), threading.Event()
    thread = _hold_in_thread(str(tmp_path), ["silver.sessions"], "sessionize", release, held)
    try:
        start = time.monotonic()
        with pytest.raises(WriterLockTimeout) as exc:
            with writer_locks(str(tmp_path), ["silver.events_sessionized", "silver.sessions"],
                              "sessionize", timeout=0.5):
                pytest.fail("took a lock another thread holds")
        waited = time.monotonic() - start
        message = str(exc.value)
        assert "another writer holds" in message and "silver.sessions" in message
        assert "sessionize pid" in message and "storage.lock_timeout_seconds" in message
        assert 0.5 <= waited < 3
    finally:
        release.set()
        thread.join()
    # Nothing half-held: the lock taken before the refusal was released.
    with writer_locks(str(tmp_path), ["silver.events_sessionized"], "other", timeout=0):
        pass


def test_waiting_writer_gets_the_lock_when_the_holder_finishes(tmp_path):
    release, held = threading.Event(), threading.Event()
    thread = _hold_in_thread(str(tmp_path), ["bronze.events"], "ingest", release, held)
    order = []
    timer = threading.Timer(0.4, lambda: (order.append("released"), release.set()))
    timer.start()
    with writer_locks(str(tmp_path), ["bronze.events"], "ingest", timeout=5):
        order.append("acquired")
    thread.join()
    assert order == ["released", "acquired"]
    assert (tmp_path / "_locks" / "bronze.events.lock").exists()
    assert lock_file(str(tmp_path), "bronze.events") == str(tmp_path / "_locks" / "bronze.events.lock")


def test_same_thread_reenters_and_object_stores_take_no_lock(tmp_path):
    with writer_locks(str(tmp_path), ["ref.items"], "ingest", timeout=0):
        with writer_locks(str(tmp_path), ["ref.items", "bronze.events"], "run", timeout=0):
            pass
        # Still held after the inner block: another thread is refused.
        errors = []
        worker = threading.Thread(target=lambda: _try(tmp_path, errors))
        worker.start()
        worker.join()
        assert len(errors) == 1 and isinstance(errors[0], WriterLockTimeout)
    with writer_locks("s3://bucket/warehouse", ["ref.items"], "ingest", timeout=0):
        pass  # no lock file, no error


def _try(tmp_path, errors):
    try:
        with writer_locks(str(tmp_path), ["ref.items"], "other", timeout=0):
            pass
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        errors.append(exc)
