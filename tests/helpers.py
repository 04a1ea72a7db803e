"""Test helpers: independent readers of Delta tables (delta-rs only, no Spark)."""

from __future__ import annotations

from typing import Optional

import pyarrow as pa


def read_with_delta_rs(path: str, version: Optional[int] = None) -> pa.Table:
    """Read a Delta table with delta-rs' own query engine, as a non-Spark consumer would."""
    from deltalake import DeltaTable, QueryBuilder

    table = DeltaTable(path, version=version) if version is not None else DeltaTable(path)
    return pa.table(QueryBuilder().register("t", table).execute("SELECT * FROM t").read_all())


def _plain(t: pa.DataType) -> pa.DataType:
    """The type with string_view (what delta-rs' engine returns) replaced by string, recursively."""
    if t == pa.string_view():
        return pa.string()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(pa.field(t.value_field.name, _plain(t.value_type), t.value_field.nullable))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _plain(f.type), f.nullable) for f in t])
    return t


def read_as_bi(path: str):
    """A Delta table as a pandas DataFrame through delta-rs only, as a BI tool reads it."""
    table = read_with_delta_rs(path)
    schema = pa.schema([pa.field(f.name, _plain(f.type), f.nullable) for f in table.schema])
    return table.cast(schema).to_pandas()
