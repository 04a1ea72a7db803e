"""Table contracts: what each catalog table holds (columns and types, partitioning, keys), and
the check every write runs against it on either Delta engine.

A contract's types are Spark's simple type strings (``bigint``, ``array<int>``,
``struct<a:string,b:double>``): the form ``DataType.simpleString()`` gives and DDL accepts, so a
contract is checked against a DataFrame's schema and turned into a ``createDataFrame`` schema
without this module importing pyspark. Nullability is not part of a contract (Parquet round trips
do not keep it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from interest_lib.storage.engine import SchemaMismatchError

__all__ = ["TableContract", "ContractError", "MissingColumnError", "ColumnTypeError",
           "UnexpectedColumnError", "PartitioningError", "check_columns", "check_partitioning", "columns_to_add"]


@dataclass(frozen=True)
class TableContract:
    """Columns (name, Spark simple type), partition columns and key columns of one table."""

    columns: tuple[tuple[str, str], ...]
    partition_by: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    """Columns declared after the table's first release (schema evolution): a write adds them to
    an existing table that lacks them (nullable; rows written before read null). Never a key or
    partition column."""

    def __post_init__(self):
        names = [c for c, _ in self.columns]
        unknown = [c for c in (*self.partition_by, *self.keys, *self.added) if c not in names]
        if unknown or len(set(names)) != len(names):
            raise ValueError(f"contract names unknown or repeated columns: {unknown or names}")
        fixed = [c for c in self.added if c in (*self.partition_by, *self.keys)]
        if fixed:
            raise ValueError(f"added columns cannot be keys or partition columns: {fixed}")

    @property
    def names(self) -> list[str]:
        """Column names, in table order."""
        return [c for c, _ in self.columns]

    def type_of(self, column: str) -> str:
        """The column's Spark simple type."""
        return dict(self.columns)[column]

    def ddl(self, columns: Optional[Sequence[str]] = None) -> str:
        """``name type, ...`` (all columns, or ``columns`` in that order) for ``createDataFrame``."""
        types = dict(self.columns)
        return ", ".join(f"`{c}` {types[c]}" for c in (columns or self.names))


class ContractError(SchemaMismatchError):
    """A frame written to a table breaks the table's contract; ``table`` and ``column`` name where."""

    def __init__(self, message: str, table: str, column: Optional[str] = None):
        super().__init__(message)
        self.table, self.column = table, column


class MissingColumnError(ContractError):
    """The frame lacks a column of the contract."""


class ColumnTypeError(ContractError):
    """A column of the frame has another type than the contract's."""


class UnexpectedColumnError(ContractError):
    """The frame has a column the contract does not declare."""


class PartitioningError(ContractError):
    """A write partitions the table by other columns than the contract's."""


def _simple(data_type) -> str:
    return data_type.simpleString() if hasattr(data_type, "simpleString") else str(data_type)


def check_columns(table: str, contract: TableContract, fields: Iterable) -> None:
    """Check a frame's schema (Spark ``StructField``s, or (name, type string) pairs) against
    ``contract``.

    Raises:
        MissingColumnError, ColumnTypeError, UnexpectedColumnError: in that order of precedence;
            the message names the table and every offending column with both types.
    """
    have = {}
    for f in fields:
        name, kind = (f.name, f.dataType) if hasattr(f, "dataType") else f
        have[name] = _simple(kind)
    want = dict(contract.columns)
    missing = [c for c in want if c not in have]
    changed = [c for c in want if c in have and have[c] != want[c]]
    extra = [c for c in have if c not in want]
    if not (missing or changed or extra):
        return
    problems = ([f"missing column {c!r} ({want[c]})" for c in missing]
                + [f"column {c!r} is {have[c]}, the contract says {want[c]}" for c in changed]
                + [f"unexpected column {c!r} ({have[c]})" for c in extra])
    message = f"{table}: the data breaks the table's contract (storage/catalog.py): " + "; ".join(problems)
    if missing:
        raise MissingColumnError(message, table, missing[0])
    if changed:
        raise ColumnTypeError(message, table, changed[0])
    raise UnexpectedColumnError(message, table, extra[0])


def check_partitioning(table: str, contract: TableContract, partition_by: Sequence[str]) -> None:
    """Refuse a write that partitions ``table`` otherwise than its contract.

    Raises:
        PartitioningError: naming the table and both column lists.
    """
    if tuple(partition_by) and tuple(partition_by) != contract.partition_by:
        raise PartitioningError(f"{table}: written partitioned by {list(partition_by)}, the contract "
                                f"says {list(contract.partition_by)}", table,
                                next((c for c in partition_by if c not in contract.partition_by), None))


def columns_to_add(table: str, table_fields: Iterable) -> list[tuple[str, str]]:
    """The contract's ``added`` columns that an existing table (its schema's fields, Spark
    ``StructField``s or (name, type) pairs) lacks, as (name, type) in contract order: what a
    write of the full contract adds to it before committing. Empty when the table lacks any
    other contract column too (the write then fails on the schema check, naming them all) or
    when ``table`` is outside the catalog."""
    from interest_lib.storage.catalog import contract

    declared = contract(table)
    if declared is None or not declared.added:
        return []
    have = {f.name if hasattr(f, "name") else f[0] for f in table_fields}
    missing = [c for c in declared.names if c not in have]
    if not missing or not set(missing) <= set(declared.added):
        return []
    return [(c, declared.type_of(c)) for c in missing]


def check_write(table: str, schema, partition_by: Sequence[str] = ()) -> None:
    """Check a write of a DataFrame with ``schema`` (a Spark StructType) to catalog table
    ``table`` against its contract; tables outside the catalog are not checked. Called by both
    Delta engines before any file is written.

    Raises:
        ContractError: a subclass naming the table and the column (see :func:`check_columns`).
    """
    from interest_lib.storage.catalog import contract

    declared = contract(table)
    if declared is None:
        return
    check_partitioning(table, declared, partition_by)
    check_columns(table, declared, schema.fields)
