"""Test helpers: independent readers of Delta tables (delta-rs only, no Spark)."""

from __future__ import annotations

from typing import Optional

import pyarrow as pa


def read_with_delta_rs(path: str, version: Optional[int] = None) -> pa.Table:
    """Read a Delta table with delta-rs' own query engine, as a non-Spark consumer would."""
    from deltalake import DeltaTable, QueryBuilder

    table = DeltaTable(path, version=version) if version is not None else DeltaTable(path)
    return pa.table(QueryBuilder().register("t", table).execute("SELECT * FROM t").read_all())
