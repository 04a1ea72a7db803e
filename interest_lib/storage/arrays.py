"""Delta snapshot columns as numpy arrays: the one conversion the training feeds, evaluation and
scoring's baselines share, so a model and its baselines see the same numbers.

Per column: list<int> -> int64 ``[N, L]``, list<float> -> float32 ``[N, L]``, int -> int64
``[N]``, float -> float32 ``[N]``, bool -> bool ``[N]``, timestamp -> int64 epoch microseconds
``[N]``, string -> object array of ``str``. Nulls become zeros (a null list: a row of zeros; a
null scalar: 0 / False). List columns must be fixed-length. No pyspark, no torch.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["numpy_dtype", "is_list", "supported", "column_to_numpy", "read_arrays"]


def numpy_dtype(arrow_type: pa.DataType) -> Optional[np.dtype]:
    """The numpy dtype a scalar Arrow type is delivered as (``object`` = str), or None."""
    if pa.types.is_integer(arrow_type) or pa.types.is_timestamp(arrow_type):
        return np.dtype(np.int64)
    if pa.types.is_floating(arrow_type):
        return np.dtype(np.float32)
    if pa.types.is_boolean(arrow_type):
        return np.dtype(bool)
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return np.dtype(object)
    return None


def is_list(arrow_type: pa.DataType) -> bool:
    """Whether the Arrow type is a (large) list."""
    return pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)


def supported(arrow_type: pa.DataType) -> bool:
    """Whether :func:`column_to_numpy` can deliver a column of this type."""
    return numpy_dtype(arrow_type.value_type if is_list(arrow_type) else arrow_type) is not None


def column_to_numpy(array: pa.Array, arrow_type: pa.DataType, column: str, where: str,
                    widths: Optional[dict] = None) -> np.ndarray:
    """One column (a combined Arrow array) as numpy without per-row Python work.

    Args:
        array: the column's values.
        arrow_type: its type in the table.
        column, where: named in errors (``where``: the table and version).
        widths: list widths seen so far per column, kept across chunks of one stream so every
            chunk of a list column has the same length (updated in place).

    Raises:
        ValueError: a list column is not fixed-length, or is null in a whole first chunk.
    """
    if is_list(arrow_type):
        return _list_to_numpy(array, arrow_type, column, where, {} if widths is None else widths)
    dtype = numpy_dtype(arrow_type)
    if dtype == object:
        return array.to_numpy(zero_copy_only=False)
    if pa.types.is_timestamp(arrow_type):
        array = array.cast(pa.timestamp("us", arrow_type.tz), safe=False).cast(pa.int64())
    array = array.fill_null(False if dtype == bool else 0)
    return array.to_numpy(zero_copy_only=False).astype(dtype, copy=False)


def _list_to_numpy(array: pa.Array, arrow_type: pa.DataType, column: str, where: str,
                   widths: dict) -> np.ndarray:
    """A fixed-length list column as ``[rows, L]``; a null list is a row of zeros."""
    dtype = numpy_dtype(arrow_type.value_type)
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    lengths = np.unique(pc.list_value_length(array).to_numpy(zero_copy_only=False)[valid])
    if len(lengths):
        width = widths.setdefault(column, int(lengths[0]))
        if len(lengths) > 1 or lengths[0] != width:
            raise ValueError(f"{where}: list column {column!r} is not fixed-length "
                             f"(lengths {sorted({width, *lengths.tolist()})})")
    elif column in widths:
        width = widths[column]
    else:
        raise ValueError(f"{where}: list column {column!r} is null in a whole row group "
                         "read before any non-null value, so its length is unknown")
    values = array.flatten().fill_null(0).to_numpy(zero_copy_only=False)
    values = values.astype(dtype, copy=False).reshape(int(valid.sum()), width)
    if valid.all():
        return values
    out = np.zeros((len(array), width), dtype)
    out[valid] = values
    return out


def read_arrays(table_path: str, version: Optional[int], columns: Sequence[str],
                where: Optional[Mapping[str, object]] = None) -> dict[str, np.ndarray]:
    """The rows of a Delta snapshot whose partition values equal ``where`` (e.g. one split), as
    numpy arrays per column, in file order (the order of the training feeds without shuffling).

    Raises:
        ValueError: naming the table and version, when no rows match or a column is unknown or
            of an unsupported type.
    """
    from interest_lib.storage.snapshot import open_snapshot

    snapshot = open_snapshot(table_path, version)
    where_text = f"{snapshot}"
    missing = [c for c in columns if c not in snapshot.schema.names]
    if missing or not columns:
        raise ValueError(f"{where_text}: unknown columns {missing or list(columns)}; "
                         f"available: {snapshot.schema.names}")
    table = snapshot.read(columns, where)
    if not table.num_rows:
        raise ValueError(f"{where_text}: no rows for {dict(where or {})}")
    out = {}
    for c in columns:
        arrow_type = snapshot.schema.field(c).type
        if not supported(arrow_type):
            raise ValueError(f"{where_text}: column {c!r} has unsupported type {arrow_type}")
        out[c] = column_to_numpy(table.column(c).combine_chunks(), arrow_type, c, where_text)
    return out
