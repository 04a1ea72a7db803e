"""Test helpers: independent readers of Delta tables (delta-rs only, no Spark)."""

from __future__ import annotations

from typing import Optional

import pyarrow as pa

from interest_lib.storage.arrow_snapshot import delta_rs_engine_usable, plain_types, read_snapshot


def read_with_delta_rs(path: str, version: Optional[int] = None) -> pa.Table:
    """Read a Delta table with delta-rs' own query engine, as a non-Spark consumer would.

    Under pyarrow < 16 (the card environment's 14.0.2) the engine's string_view columns cannot
    be imported, so the snapshot's files (listed by delta-rs) are read with pyarrow instead."""
    if not delta_rs_engine_usable():
        return read_snapshot(path, version)
    from deltalake import DeltaTable, QueryBuilder

    table = DeltaTable(path, version=version)
    return pa.table(QueryBuilder().register("t", table).execute("SELECT * FROM t").read_all())


def read_as_bi(path: str):
    """A Delta table as a pandas DataFrame through delta-rs only, as a BI tool reads it."""
    return plain_types(read_with_delta_rs(path)).to_pandas()
