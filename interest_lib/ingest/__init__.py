"""Raw files -> bronze.events (+ quarantine) and ref.items: read, validate, dedupe, pseudonymise."""

from interest_lib.ingest.job import IngestReport, run_ingest

__all__ = ["IngestReport", "run_ingest"]
