"""Streaming raw records: a landing folder of JSON-lines files, or a Kafka topic.

Both end in :func:`~interest_lib.ingest.readers.parse_json_lines`, the parser batch ingest uses for
``.jsonl`` files, so a record is valid, corrupt or quarantined on the stream exactly as in a
batch. The file source reads every file under the landing folder as text (``.gz`` / ``.bz2``
decompressed by name): a file that is not JSON lines is not skipped but quarantined line by line
(``malformed_record``). Like every Spark file source it ignores names starting with ``_`` or ``.``.
"""

from __future__ import annotations

import os

from pyspark.sql import DataFrame, SparkSession, functions as F

from interest_lib import schema as S
from interest_lib.conf import Config
from interest_lib.errors import InputError
from interest_lib.ingest.readers import parse_json_lines


def landing_path(conf: Config) -> str:
    """The folder the file source watches: ``stream.landing`` or ``<raw_dir>/landing``."""
    return conf.stream.landing or os.path.join(conf.storage.raw_dir, "landing")


def file_source(spark: SparkSession, conf: Config) -> DataFrame:
    """Raw records from new files in the landing folder, ``stream.max_files_per_trigger`` files
    per micro-batch; ``source_file`` is the file's URI as batch ingest records it."""
    path = landing_path(conf)
    if "://" not in path:
        os.makedirs(path, exist_ok=True)
    lines = (spark.readStream.format("text")
             .option("maxFilesPerTrigger", conf.stream.max_files_per_trigger)
             .option("recursiveFileLookup", "true")
             .load(path)
             .withColumn(S.SOURCE_FILE, F.input_file_name()))
    return parse_json_lines(lines, S.RAW_FIELDS, conf.ingest.columns)


def kafka_source(spark: SparkSession, conf: Config) -> DataFrame:
    """Raw records from a Kafka topic (one JSON event per message value);
    ``source_file`` is ``kafka:<topic>/<partition>@<offset>``."""
    s = conf.stream
    if not s.kafka_bootstrap_servers:
        raise InputError("stream.source=kafka needs stream.kafka_bootstrap_servers (host:port of a broker)")
    raw = (spark.readStream.format("kafka")
           .option("kafka.bootstrap.servers", s.kafka_bootstrap_servers)
           .option("subscribe", s.kafka_topic)
           .option("startingOffsets", s.kafka_starting_offsets)
           .option("maxOffsetsPerTrigger", s.max_offsets_per_trigger)
           .option("failOnDataLoss", "true")
           .load())
    lines = raw.select(
        F.col("value").cast("string").alias("value"),
        F.concat(F.lit("kafka:"), F.col("topic"), F.lit("/"), F.col("partition").cast("string"),
                 F.lit("@"), F.col("offset").cast("string")).alias(S.SOURCE_FILE))
    return parse_json_lines(lines, S.RAW_FIELDS, conf.ingest.columns)


def raw_stream(spark: SparkSession, conf: Config) -> DataFrame:
    """The configured source (``stream.source``) as streaming raw records."""
    return kafka_source(spark, conf) if conf.stream.source == "kafka" else file_source(spark, conf)
