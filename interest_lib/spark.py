"""The one SparkSession factory every job uses.

Local default: ``local[*]`` with laptop-sized memory and shuffle partitions, UTC session time
zone, Parquet timestamps as INT64 micros (what Delta expects), and the driver's own Python for
the workers. Under spark-submit or on Databricks the session that already exists (or the master
spark-submit set) is taken as it is and only SQL settings are applied.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

from pyspark.sql import SparkSession

from interest_lib.conf import Config, SparkConf

# Settings every session needs for correct results, whatever the environment.
_REQUIRED_SQL_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def _launched_by_spark_submit() -> bool:
    return "spark.master" in os.environ.get("PYSPARK_SUBMIT_ARGS", "") or bool(
        os.environ.get("SPARK_ENV_LOADED") or os.environ.get("DATABRICKS_RUNTIME_VERSION")
    )


def get_spark(conf: Config | SparkConf, spark: Optional[SparkSession] = None) -> SparkSession:
    """Return the job's SparkSession.

    Args:
        conf: the whole :class:`Config` or just its ``spark`` section.
        spark: an existing session (tests pass theirs); it only gets the required SQL settings.

    Returns:
        A session with UTC time zone and the configured shuffle / Arrow settings.
    """
    sconf = conf.spark if isinstance(conf, Config) else conf
    active = spark or SparkSession.getActiveSession()
    if active is None:
        # Workers must run the same interpreter (and so see the same packages) as the driver.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = SparkSession.builder.appName(sconf.app_name)
        if not _launched_by_spark_submit():
            builder = (
                builder.master(sconf.master)
                .config("spark.driver.memory", sconf.driver_memory)
                .config("spark.ui.enabled", str(sconf.ui_enabled).lower())
                .config("spark.driver.host", os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"))
                .config("spark.sql.warehouse.dir", os.path.abspath("spark-warehouse"))
            )
        for key, value in sconf.extra.items():
            builder = builder.config(key, str(value))
        active = builder.getOrCreate()
        if not _launched_by_spark_submit():
            active.sparkContext.setLogLevel("ERROR")
    settings = dict(_REQUIRED_SQL_CONF)
    settings["spark.sql.shuffle.partitions"] = str(sconf.shuffle_partitions)
    settings["spark.sql.execution.arrow.maxRecordsPerBatch"] = str(sconf.arrow_batch_size)
    for key, value in settings.items():
        active.conf.set(key, value)
    return active


def delta_jars_available(spark: SparkSession) -> bool:
    """True when the Delta Lake data source classes are on the JVM classpath."""
    try:
        spark._jvm.java.lang.Class.forName(  # type: ignore[union-attr]
            "io.delta.tables.DeltaTable", True,
            spark._jvm.java.lang.Thread.currentThread().getContextClassLoader(),  # type: ignore[union-attr]
        )
        return True
    except Exception:  # py4j wraps ClassNotFoundException
        return False


def ivy_cache_dir() -> str:
    """Where Ivy keeps resolved Maven packages: ``$INTEREST_IVY_DIR``, else
    ``$XDG_CACHE_HOME/interest-evolution/ivy`` (``~/.cache/...``), beside the project's other caches,
    so tests and jobs resolve a package once per machine."""
    if os.environ.get("INTEREST_IVY_DIR"):
        return os.environ["INTEREST_IVY_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "interest-evolution", "ivy")


def add_packages(sconf: SparkConf, coordinates: list[str]) -> None:
    """Add Maven ``coordinates`` (``group:artifact:version``) to ``spark.jars.packages`` in
    ``spark.extra`` (kept: packages already listed there), with the Ivy cache in
    :func:`ivy_cache_dir` unless ``spark.jars.ivy`` is set. Takes effect when the session is built
    (a running JVM cannot load them); spark-submit's ``--packages`` does the same on a cluster."""
    listed = [p for p in str(sconf.extra.get("spark.jars.packages", "")).split(",") if p.strip()]
    for coordinate in coordinates:
        if coordinate not in listed:
            listed.append(coordinate)
    sconf.extra["spark.jars.packages"] = ",".join(listed)
    sconf.extra.setdefault("spark.jars.ivy", ivy_cache_dir())


def kafka_package(artifact: str) -> str:
    """The Kafka source's coordinate for the running pyspark (``artifact`` + ``:<version>``)."""
    import pyspark

    return f"{artifact}:{pyspark.__version__}"
