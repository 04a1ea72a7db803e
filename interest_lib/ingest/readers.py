"""Read raw event and item files (JSON lines, CSV, Parquet; .gz / .bz2 compressed) as strings.

Every field is read as a string so that a malformed value becomes a quarantine row with a
reason instead of a silent null. Each row keeps the file it came from (``source_file``); a record
that does not parse keeps its text in ``_corrupt_record``.

Columns are bound **by name**: a CSV file's header, a JSON object's keys, a Parquet column name.
``ingest.columns`` maps a raw field to the input's column name where they differ; a CSV header
that lacks a required column is an error naming the file and the missing and unknown columns.
A CSV file without a header is read by position only when ``ingest.csv_header`` is false.

Nothing is skipped without a count: every non-blank JSON line is one record (a line holding an
array, a scalar or two objects is a ``malformed_record``, not zero or two records), and data files
whose names start with ``_`` or ``.`` (which Spark would skip) are refused with an error.
"""

from __future__ import annotations

import bz2
import csv
import glob
import gzip
import os
import re
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from pyspark.sql import Column, DataFrame, SparkSession, functions as F, types as T

from interest_lib.errors import InputError
from interest_lib.logs import get_logger
from interest_lib.schema import SOURCE_FILE

log = get_logger(__name__)

CORRUPT = "_corrupt_record"
_EXTENSIONS = {".json": "jsonl", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv",
               ".parquet": "parquet"}
#: Compression suffixes that Spark's text sources (JSON lines, CSV) decompress by file name.
COMPRESSIONS = {".gz": gzip.open, ".bz2": bz2.open}


class RawInputError(InputError):
    """The raw input cannot be read: missing, empty, mixed formats or columns that do not fit."""


@dataclass(frozen=True)
class RawFile:
    """One input file: its path as Spark reads it, size in bytes and modification time (s)."""

    path: str
    size: int
    mtime: int


@dataclass(frozen=True)
class RawInput:
    """The data files found under an input path and their format."""

    path: str
    format: str
    files: tuple[RawFile, ...]


def is_remote(path: str) -> bool:
    """True for URIs (s3://, abfss://, dbfs:/, file:/...): listed through Hadoop's FileSystem."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", path) is not None


def list_local_files(path: str) -> list[str]:
    """Files under a local file, folder (recursively) or glob."""
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        return [os.path.join(root, f) for root, _d, names in os.walk(path) for f in names]
    return glob.glob(path, recursive=True)


def file_kind(name: str) -> Optional[str]:
    """jsonl | csv | parquet from a file name's extension (after a .gz / .bz2 suffix), else None."""
    base = name.lower()
    for suffix in COMPRESSIONS:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return _EXTENSIONS.get(os.path.splitext(base)[1])


def _listing(spark: SparkSession, path: str) -> list[tuple[RawFile, str]]:
    """Every file under ``path`` with its path relative to the folder that was listed."""
    if not is_remote(path):
        out = []
        for f in sorted(list_local_files(path)):
            if os.path.isfile(f):
                rel = os.path.relpath(f, path) if os.path.isdir(path) else os.path.basename(f)
                out.append((RawFile(f, os.path.getsize(f), int(os.path.getmtime(f))), rel))
        return out
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    out = []
    for status in fs.globStatus(hpath) or []:
        root = status.getPath().toString().rstrip("/")
        if status.isDirectory():
            it = fs.listFiles(status.getPath(), True)
            while it.hasNext():
                f = it.next()
                name = f.getPath().toString()
                out.append((RawFile(name, f.getLen(), f.getModificationTime() // 1000),
                            name[len(root) + 1:]))
        else:
            out.append((RawFile(root, status.getLen(), status.getModificationTime() // 1000),
                        root.rsplit("/", 1)[-1]))
    return sorted(out, key=lambda x: x[0].path)


def scan_input(spark: SparkSession, path: str, fmt: str = "auto", missing_ok: bool = False) -> Optional[RawInput]:
    """The data files under ``path`` (a file, folder or glob, local or a URI) and their format.

    Files Spark itself treats as hidden are not data: Hadoop/Spark metadata (``_SUCCESS``,
    ``.crc``) and anything in a folder whose name starts with ``_`` or ``.`` (``_temporary``) are
    left out, the latter with a warning. A data file whose own name starts with ``_`` or ``.`` is
    an error (Spark would skip it without a count).

    Args:
        spark: the session (its Hadoop configuration lists remote paths).
        path: the input path.
        fmt: ``auto`` (from the extensions; every file must have one of them) or the format.
        missing_ok: return None instead of raising when there are no files.

    Returns:
        A :class:`RawInput`, or None when ``missing_ok`` and nothing is there.
    """
    files, hidden, in_hidden_dirs = [], [], []
    for f, rel in _listing(spark, path):
        parts = rel.replace("\\", "/").split("/")
        if parts[-1].startswith(("_", ".")):
            if file_kind(parts[-1]) is not None:
                hidden.append(f.path)
        elif any(p.startswith(("_", ".")) for p in parts[:-1]):
            in_hidden_dirs.append(f.path)
        else:
            files.append(f)
    if hidden:
        raise RawInputError(
            f"{path}: {len(hidden)} data file(s) whose names start with '_' or '.', which Spark "
            f"skips as hidden: {', '.join(hidden[:5])}{' ...' if len(hidden) > 5 else ''}; "
            "rename them (or move them away) and rerun")
    if in_hidden_dirs:
        log.warning("%s: %d file(s) in folders whose names start with '_' or '.' are not read "
                    "(e.g. %s)", path, len(in_hidden_dirs), in_hidden_dirs[0])
    if not files:
        if missing_ok:
            return None
        raise RawInputError(f"{path}: no input files found")
    if fmt == "auto":
        kinds = {file_kind(f.path) for f in files}
        unknown = [f.path for f in files if file_kind(f.path) is None]
        if unknown or len(kinds) != 1:
            raise RawInputError(
                f"{path}: cannot tell the format from the extensions (found "
                f"{sorted(k for k in kinds if k) or 'none'}"
                + (f"; no known extension: {', '.join(unknown[:5])}" if unknown else "")
                + "); use .jsonl/.json/.csv/.parquet (optionally .gz or .bz2) or set ingest.format")
        fmt = kinds.pop()
    return RawInput(path, fmt, tuple(files))


def raw_record(fields: Sequence[str]) -> Column:
    """The rejected record as text: the original line when it did not parse, else its fields as
    JSON (computed only for quarantined rows, so valid rows never carry their raw text)."""
    return F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*fields)))


def read_raw(spark: SparkSession, source: RawInput | str, fields: Sequence[str], fmt: str = "auto",
             columns: Optional[Mapping[str, str]] = None, required: Sequence[str] = (),
             csv_header: bool = True) -> DataFrame:
    """Raw records: one string column per field, ``_corrupt_record`` and source_file.

    Args:
        spark: the session.
        source: a :class:`RawInput` from :func:`scan_input`, or a path (scanned with ``fmt``).
        fields: the raw fields to return, in order.
        fmt: the format when ``source`` is a path.
        columns: raw field -> the input's column name, where they differ.
        required: fields a CSV header or a Parquet schema must provide; others may be absent (null).
        csv_header: CSV files have a header; False: columns by position (``_c0``, ``_c1``...).

    Returns:
        One row per record. A record that is not valid JSON / CSV, or a JSON line that is not
        exactly one object, has ``_corrupt_record`` set. Blank lines are not records.
    """
    raw = scan_input(spark, source, fmt) if isinstance(source, str) else source
    names = {f: (columns or {}).get(f, f) for f in fields}
    paths = [f.path for f in raw.files]
    if raw.format == "jsonl":
        return _read_jsonl(spark, paths, fields, names)
    if raw.format == "csv":
        return _read_csv(spark, raw, fields, dict(columns or {}), required, csv_header)
    if raw.format == "parquet":
        return _read_parquet(spark, raw, fields, names, [f for f in fields if f in required or f in (columns or {})])
    raise RawInputError(f"unknown raw format {raw.format!r}")


def _parquet_schema(spark: SparkSession, path: str) -> tuple:
    """A Parquet file's columns as (name, type) pairs; nanosecond timestamps are typed
    ``timestamp_ns`` (Spark cannot read them as timestamps). Unreadable: an error naming the file."""
    try:
        if not is_remote(path):
            import pyarrow as pa
            import pyarrow.parquet as pq

            return tuple((f.name, "timestamp_ns" if pa.types.is_timestamp(f.type) and f.type.unit == "ns"
                          else str(f.type)) for f in pq.read_schema(path))
        return tuple((f.name, f.dataType.simpleString()) for f in spark.read.parquet(path).schema.fields)
    except Exception as exc:  # a damaged footer, not Parquet at all, a type Spark cannot read
        raise RawInputError(f"{path}: cannot read the Parquet schema: {str(exc).splitlines()[0]}") from None


def _read_parquet(spark: SparkSession, raw: RawInput, fields: Sequence[str], names: dict,
                  required: Sequence[str]) -> DataFrame:
    """Parquet files grouped by schema, each group's columns cast to strings, so that files whose
    types drift (price long in one, string in another) read together. Nanosecond timestamps
    (pandas' default) become ISO-8601 UTC strings with microseconds."""
    groups: dict[tuple, list[str]] = {}
    for f in raw.files:
        groups.setdefault(_parquet_schema(spark, f.path), []).append(f.path)
    frames = []
    for schema, paths in groups.items():
        cols = dict(schema)
        where = paths[0] + (f" (and {len(paths) - 1} more file(s) with that schema)" if len(paths) > 1 else "")
        missing = [f for f in required if names[f] not in cols]
        if missing:
            raise RawInputError(_misfit(where, "Parquet input", missing, names,
                                        [c for c in cols if c not in names.values()]))
        if "timestamp_ns" in cols.values():
            # Spark reads INT64 TIMESTAMP(NANOS) only as a long of nanoseconds, with this flag.
            spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
        try:
            df = spark.read.parquet(*paths)
        except Exception as exc:
            raise RawInputError(f"{where}: cannot read the Parquet file(s): {str(exc).splitlines()[0]}") from None

        def text(f: str) -> Column:
            name = names[f]
            if name not in cols:
                return F.lit(None).cast("string")
            if cols[name] == "timestamp_ns":
                micros = F.timestamp_micros(F.floor(F.col(name) / 1000).cast("long"))
                return F.date_format(micros, "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX")
            return F.col(name).cast("string")

        frames.append(df.select(*[text(f).alias(f) for f in fields], F.lit(None).cast("string").alias(CORRUPT),
                                F.input_file_name().alias(SOURCE_FILE)))
    out = frames[0]
    for df in frames[1:]:
        out = out.unionByName(df)
    return out


def _read_jsonl(spark: SparkSession, paths: list[str], fields: Sequence[str], names: dict) -> DataFrame:
    """One record per non-blank line, parsed by name (:func:`parse_json_lines`)."""
    lines = spark.read.text(paths).withColumn(SOURCE_FILE, F.input_file_name())
    return parse_json_lines(lines, fields, names)


def parse_json_lines(lines: DataFrame, fields: Sequence[str], names: Optional[Mapping[str, str]] = None) -> DataFrame:
    """JSON-lines text -> raw records: one record per non-blank ``value``, parsed by name;
    anything but one JSON object is corrupt. Serves batch files, the streaming landing folder
    and Kafka message values alike (batch or streaming DataFrames).

    Args:
        lines: rows with a string ``value`` (one line or message) and ``source_file``.
        fields: the raw fields to return, in order.
        names: raw field -> the input's key, where they differ.

    Returns:
        One string column per field, ``_corrupt_record`` and ``source_file``; blank values are
        not records.
    """
    names = {f: (names or {}).get(f, f) for f in fields}
    keys = list(dict.fromkeys(names.values()))
    schema = T.StructType([T.StructField(k, T.StringType()) for k in keys]
                          + [T.StructField(CORRUPT, T.StringType())])
    lines = lines.filter(F.trim("value") != "")
    parsed = F.from_json("value", schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    # from_json reads the first JSON value of a line and ignores what follows, and the JSON
    # source turns an array line into zero or several rows: both would lose or invent records.
    # A line is one record only when, wrapped in [...], it is an array of exactly one object.
    one_object = (F.ltrim("value").startswith("{")
                  & (F.json_array_length(F.concat(F.lit("["), F.col("value"), F.lit("]"))) == 1))
    df = lines.select("value", SOURCE_FILE, parsed.alias("_p"))
    corrupt = F.when(F.col(f"_p.{CORRUPT}").isNotNull() | ~F.coalesce(one_object, F.lit(False)),
                     F.col("value"))
    good = F.col(f"_p.{CORRUPT}").isNull() & F.coalesce(one_object, F.lit(False))
    return df.select(
        *[F.when(good, F.col("_p").getField(names[f])).alias(f) for f in fields],
        corrupt.alias(CORRUPT), SOURCE_FILE,
    )


def _first_line(spark: SparkSession, path: str) -> Optional[str]:
    """The first line of a (possibly compressed) text file, None if the file is empty."""
    if not is_remote(path):
        opener = next((fn for sfx, fn in COMPRESSIONS.items() if path.lower().endswith(sfx)), open)
        with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as fh:
            line = fh.readline()
        return line.rstrip("\r\n") if line else None
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    stream = hpath.getFileSystem(conf).open(hpath)
    codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(conf).getCodec(hpath)
    if codec is not None:
        stream = codec.createInputStream(stream)
    reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8"))
    try:
        line = reader.readLine()
    finally:
        reader.close()
    return None if line is None else line.lstrip("\ufeff")


def _misfit(where: str, what: str, missing: Sequence[str], names: dict, unknown: Sequence[str],
            csv_hint: bool = False) -> str:
    wanted = ", ".join(f + (f" (as '{names[f]}')" if names[f] != f else "") for f in missing)
    text = (f"{where}: {what} does not fit the raw schema: missing column(s) {wanted}; "
            f"columns not in the raw schema: {list(unknown) or 'none'}. Name the input's columns "
            "for the raw fields in ingest.columns (raw field: column)")
    if csv_hint:
        text += (", or, if the file has no header line, set ingest.csv_header: false "
                 "(columns then bound by position)")
    return text


def _read_csv(spark: SparkSession, raw: RawInput, fields: Sequence[str], columns: dict,
              required: Sequence[str], header: bool) -> DataFrame:
    """CSV files grouped by header; each group read with its own header's column order."""
    groups: dict[tuple, list[str]] = {}
    for f in raw.files:
        line = _first_line(spark, f.path)
        if line is None:
            continue  # an empty file holds no records
        cells = [c.strip() for c in next(csv.reader([line]))]
        key = tuple(cells) if header else tuple(f"_c{i}" for i in range(len(cells)))
        groups.setdefault(key, []).append(f.path)
    if not groups:
        raise RawInputError(f"{raw.path}: every CSV file is empty")
    names = {f: columns.get(f, f if header else f"_c{i}") for i, f in enumerate(fields)}
    frames = []
    for cols, paths in groups.items():
        where = paths[0] + (f" (and {len(paths) - 1} more file(s) with that header)" if len(paths) > 1 else "")
        missing = [f for f in fields if names[f] not in cols and (f in required or f in columns)]
        if missing:
            what = "CSV header" if header else f"a CSV row of {len(cols)} columns (no header)"
            raise RawInputError(_misfit(where, what, missing, names,
                                        [c for c in cols if c not in names.values()], csv_hint=header))
        dup = sorted({c for c in cols if cols.count(c) > 1 and c in names.values()})
        if dup:
            raise RawInputError(f"{where}: CSV header names column(s) {dup} more than once")
        ignored = [c for c in cols if c not in names.values()]
        if ignored and header:
            log.warning("%s: CSV column(s) %s are not raw fields and are not read", where, ignored)
        # Spark binds a given schema to a CSV file by position, so each group gets a schema in
        # its own header's order (positional names avoid clashes with odd header texts).
        schema = T.StructType([T.StructField(f"_col{i}", T.StringType()) for i in range(len(cols))]
                              + [T.StructField(CORRUPT, T.StringType())])
        df = (spark.read.schema(schema)
              .options(header=str(header).lower(), escape='"', multiLine="true", mode="PERMISSIVE",
                       columnNameOfCorruptRecord=CORRUPT)
              .csv(paths))
        frames.append(df.select(
            *[(F.col(f"_col{cols.index(names[f])}") if names[f] in cols else F.lit(None).cast("string")).alias(f)
              for f in fields],
            CORRUPT, F.input_file_name().alias(SOURCE_FILE)))
    out = frames[0]
    for df in frames[1:]:
        out = out.unionByName(df)
    return out
