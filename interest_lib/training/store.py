"""Moved to :mod:`interest_lib.runs.store` (the run store sits below the stages, so evaluate and
score read runs without importing training). Re-exported here for existing callers."""

from interest_lib.runs.store import (
    RunPointerError, RunStore, UnsafeRecordError, atomic_save, file_sha256, latest_pointer,
    latest_run, load_record, read_json, table_identity, training_run_id, write_json, write_latest,
)

__all__ = ["RunPointerError", "RunStore", "UnsafeRecordError", "atomic_save", "file_sha256",
           "latest_pointer", "latest_run", "load_record", "read_json", "table_identity",
           "training_run_id", "write_json", "write_latest"]
