"""Test helpers: independent readers of Delta tables (delta-rs only, no Spark)."""

from __future__ import annotations

from typing import Optional

import pyarrow as pa


def read_with_delta_rs(path: str, version: Optional[int] = None) -> pa.Table:
    """Read a Delta table with delta-rs' own query engine, as a non-Spark consumer would.

    Under pyarrow < 16 (the card environment's 14.0.2) the engine's string_view columns cannot
    be imported, so the snapshot's files (from delta-rs' log) are read with pyarrow instead."""
    from deltalake import DeltaTable, QueryBuilder

    table = DeltaTable(path, version=version) if version is not None else DeltaTable(path)
    if int(pa.__version__.split(".")[0]) < 16:
        return _read_snapshot_files(path, table)
    return pa.table(QueryBuilder().register("t", table).execute("SELECT * FROM t").read_all())


def _read_snapshot_files(path: str, table) -> pa.Table:
    """The snapshot's live files read with pyarrow, partition columns restored, in table order."""
    import os
    from urllib.parse import unquote

    import pyarrow.parquet as pq

    schema = pa.schema(table.schema().to_arrow())
    adds = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    parts = []
    for add in adds:
        piece = pq.read_table(os.path.join(path, unquote(add["path"])))
        for field in schema:
            if field.name not in piece.column_names:
                value = add.get(f"partition.{field.name}")
                piece = piece.append_column(field.name, pa.array([value] * piece.num_rows).cast(field.type))
        parts.append(piece.select(schema.names).cast(schema))
    return pa.concat_tables(parts) if parts else schema.empty_table()


def _plain(t: pa.DataType) -> pa.DataType:
    """The type with string_view (what delta-rs' engine returns) replaced by string, recursively."""
    if hasattr(pa, "string_view") and t == pa.string_view():  # pyarrow >= 16
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
