"""Read raw event and item files (JSON lines, CSV, Parquet) as all-string columns.

Every field is read as a string so that a malformed value becomes a quarantine row with a
reason instead of a silent null. Each row keeps the file it came from (``source_file``); a line
that does not parse keeps its text in ``_corrupt_record``.
"""

from __future__ import annotations

import glob
import os
from typing import Sequence

from pyspark.sql import Column, DataFrame, SparkSession, functions as F, types as T

from interest_lib.schema import SOURCE_FILE

CORRUPT = "_corrupt_record"
_EXTENSIONS = {".json": "jsonl", ".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}


class RawInputError(ValueError):
    """The raw input cannot be read: missing, empty, mixed formats or missing columns."""


def list_local_files(path: str) -> list[str]:
    """Files under a local file, folder (recursively) or glob."""
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        return [os.path.join(root, f) for root, _d, names in os.walk(path) for f in names]
    return glob.glob(path, recursive=True)


def detect_format(path: str, fmt: str = "auto") -> str:
    """The raw format of ``path``: ``fmt`` if given, else from the data files' extensions."""
    if fmt != "auto":
        return fmt
    if "://" in path or path.startswith("dbfs:"):
        raise RawInputError(f"{path}: cannot detect the format of a remote path; set ingest.format")
    files = [f for f in list_local_files(path) if not os.path.basename(f).startswith(("_", "."))]
    if not files:
        raise RawInputError(f"{path}: no input files found")
    kinds = {_EXTENSIONS.get(os.path.splitext(f)[1].lower()) for f in files}
    kinds.discard(None)
    if len(kinds) != 1:
        raise RawInputError(
            f"{path}: cannot tell the format from the extensions (found {sorted(map(str, kinds)) or 'none'}); "
            "set ingest.format"
        )
    return kinds.pop()


def raw_record(fields: Sequence[str]) -> Column:
    """The rejected record as text: the original line when it did not parse, else its fields as
    JSON (computed only for quarantined rows, so valid rows never carry their raw text)."""
    return F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*fields)))


def read_raw(spark: SparkSession, path: str, fields: Sequence[str], fmt: str = "auto") -> DataFrame:
    """Raw records at ``path``: one string column per field, ``_corrupt_record`` and source_file.

    A record that is not valid JSON / CSV has all fields null and ``_corrupt_record`` set.
    Blank lines of JSON-lines files are not records and are skipped.
    """
    fmt = detect_format(path, fmt)
    schema = T.StructType([T.StructField(f, T.StringType()) for f in fields]
                          + [T.StructField(CORRUPT, T.StringType())])
    opts = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}
    reader = spark.read.option("recursiveFileLookup", "true")
    if fmt == "jsonl":
        # The JSON source parses straight into the string schema (faster than text + from_json);
        # a line that is not JSON keeps its text in _corrupt_record. Blank lines are skipped.
        df = reader.options(**opts).schema(schema).json(path)
        return df.withColumn(SOURCE_FILE, F.input_file_name()).select(*fields, CORRUPT, SOURCE_FILE)
    if fmt == "csv":
        df = reader.options(header="true", escape='"', multiLine="true", **opts).schema(schema).csv(path)
        return df.withColumn(SOURCE_FILE, F.input_file_name()).select(*fields, CORRUPT, SOURCE_FILE)
    if fmt == "parquet":
        df = reader.parquet(path)
        missing = [f for f in fields if f not in df.columns]
        if missing:
            raise RawInputError(f"{path}: Parquet input lacks required columns {missing}")
        cols = [F.col(f).cast("string").alias(f) for f in fields]
        return df.select(*cols, F.lit(None).cast("string").alias(CORRUPT),
                         F.input_file_name().alias(SOURCE_FILE))
    raise RawInputError(f"unknown raw format {fmt!r}")
