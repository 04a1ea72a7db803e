"""Read one version of a Delta table without Spark or a JVM, and query it with SQL.

The snapshot (live files, partition values, schema) comes from the storage layer's one reader,
:mod:`interest_lib.storage.snapshot`; this module adds whole-table reads and SQL on top.

This serves readers that must not depend on Spark (tests, notebooks, benches) and environments
whose pyarrow is older than 16 (the design card's 14.0.2), which cannot import the
``string_view`` columns that delta-rs' own query engine returns. :func:`query` runs SQL with
that engine when pyarrow can take its results and with DuckDB over :func:`read_snapshot`
otherwise.

Tables with column mapping, and versions with deletion vectors, are refused rather than misread
(see :class:`~interest_lib.storage.snapshot.Snapshot`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Optional, Sequence, Union

import pyarrow as pa
import pyarrow.dataset as ds

from interest_lib.storage.snapshot import open_snapshot

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ENGINES", "delta_rs_engine_usable", "snapshot_dataset", "read_snapshot",
           "plain_type", "plain_types", "query"]

#: Values of :func:`query`'s ``engine``: ``auto`` picks delta-rs when pyarrow can import its results.
ENGINES = ("auto", "delta-rs", "duckdb")


def delta_rs_engine_usable() -> bool:
    """True when this pyarrow (>= 16) can import delta-rs' query results (``string_view`` columns)."""
    return int(pa.__version__.split(".")[0]) >= 16


def snapshot_dataset(path: str, version: Optional[int] = None) -> ds.Dataset:
    """A version of the Delta table at ``path`` as a lazy pyarrow dataset of its live files.

    Args:
        path: folder or URI of the table.
        version: the version to read (time travel); None for the latest.

    Returns:
        A dataset with the table's schema (columns in table order) whose partition columns are
        filled in from each file's partition values (null where the value is null). Filters and
        column selections on it read only the files and columns they need.

    Raises:
        deltalake.exceptions.DeltaProtocolError: the table uses column mapping (its files name
            columns by physical name) or the version has deletion vectors (its files still hold
            deleted rows); a table that merely allows deletion vectors is read.
    """
    return open_snapshot(path, version).dataset()


def read_snapshot(path: str, version: Optional[int] = None,
                  columns: Optional[Sequence[str]] = None) -> pa.Table:
    """The rows of a version of the Delta table at ``path``, partition columns included.

    Args:
        path: folder or URI of the table.
        version: the version to read; None for the latest.
        columns: the columns to read (partition columns too), in this order; None for all.

    Returns:
        A table with the Delta table's schema (or its ``columns``), rows in file order.
    """
    return snapshot_dataset(path, version).to_table(columns=None if columns is None else list(columns))


def plain_type(t: pa.DataType) -> pa.DataType:
    """``t`` with the types query engines return replaced by the ones the tables hold.

    ``string_view`` / ``binary_view`` (delta-rs' engine) become ``string`` / ``binary`` and
    ``decimal(38, 0)`` (DuckDB's sum of integers) becomes ``int64``, recursively through list,
    large list, struct and map types; pandas then takes them as it takes the tables' types.
    """
    if hasattr(pa, "string_view") and t == pa.string_view():
        return pa.string()
    if hasattr(pa, "binary_view") and t == pa.binary_view():
        return pa.binary()
    if pa.types.is_decimal(t) and (t.precision, t.scale) == (38, 0):
        return pa.int64()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        make = pa.large_list if pa.types.is_large_list(t) else pa.list_
        return make(pa.field(t.value_field.name, plain_type(t.value_type), t.value_field.nullable))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, plain_type(f.type), f.nullable) for f in t])
    if pa.types.is_map(t):
        return pa.map_(plain_type(t.key_type), pa.field(t.item_field.name, plain_type(t.item_type),
                                                         t.item_field.nullable))
    return t


def plain_types(data: Union[pa.Table, pa.Schema]) -> Union[pa.Table, pa.Schema]:
    """The schema, or the table cast to the schema, with every field's type made :func:`plain_type`."""
    schema = data if isinstance(data, pa.Schema) else data.schema
    plain = pa.schema([pa.field(f.name, plain_type(f.type), f.nullable, f.metadata) for f in schema],
                      metadata=schema.metadata)
    if isinstance(data, pa.Schema):
        return plain
    return data if plain.equals(schema) else data.cast(plain)


def query(sql: str, tables: Mapping[str, str], engine: str = "auto") -> "pd.DataFrame":
    """Run ``sql`` on the latest versions of Delta tables; the result as a pandas DataFrame.

    Args:
        sql: the query; it names each table by its alias. Quote identifiers that are reserved
            words in either engine (``"window"``).
        tables: alias -> folder or URI of the table.
        engine: ``delta-rs`` (its DataFusion engine, which reads only the columns and files the
            query needs), ``duckdb`` (DuckDB over each table read whole with
            :func:`read_snapshot`, session time zone UTC so timestamps come back in UTC as from
            delta-rs), or ``auto``: delta-rs when :func:`delta_rs_engine_usable`, else DuckDB.

    Returns:
        The result, its columns cast with :func:`plain_types`.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} not in {ENGINES}")
    if engine == "auto":
        engine = "delta-rs" if delta_rs_engine_usable() else "duckdb"
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            for alias, path in tables.items():
                con.register(alias, read_snapshot(path))
            result = con.sql(sql).to_arrow_table()
        finally:
            con.close()
    else:
        from deltalake import DeltaTable, QueryBuilder

        builder = QueryBuilder()
        for alias, path in tables.items():
            builder.register(alias, DeltaTable(path))
        result = pa.table(builder.execute(sql).read_all())
    return plain_types(result).to_pandas()
