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

from interest_lib.conf import Config, SparkConf, StorageConf

#: The SQL extension and catalog the Delta data source needs (MERGE, OPTIMIZE, VACUUM, time travel).
DELTA_SQL_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


class DeltaJarsError(RuntimeError):
    """The Delta jars could not be resolved or loaded; the message names the coordinates and
    the Ivy cache."""


def delta_package(conf: Optional[StorageConf] = None) -> str:
    """Maven coordinates of the Delta jars for this environment: ``storage.delta_package`` when
    set, else those delta-spark's own ``configure_spark_with_delta_pip`` names for the installed
    delta-spark and pyspark (``io.delta:delta-spark_4.2_2.13:4.4.0`` with pyspark 4.2,
    ``io.delta:delta-spark_2.13:4.0.1`` with pyspark 4.0)."""
    if conf is not None and conf.delta_package:
        return conf.delta_package
    try:
        from delta import configure_spark_with_delta_pip
    except ImportError as exc:
        raise DeltaJarsError("storage.engine=delta-spark needs the delta-spark package "
                             "(pip install delta-spark, the [spark] extra)") from exc
    builder = configure_spark_with_delta_pip(SparkSession.Builder())
    return builder._options["spark.jars.packages"]  # the one setting it makes


def ivy_cache(conf: Optional[StorageConf] = None) -> str:
    """The Ivy folder Maven packages (Delta's jars, the Kafka source) are resolved into once:
    ``storage.ivy_cache`` when set, else :func:`ivy_cache_dir`."""
    if conf is not None and conf.ivy_cache:
        return os.path.abspath(os.path.expanduser(conf.ivy_cache))
    return ivy_cache_dir()


def delta_session_settings(conf: Optional[StorageConf] = None) -> dict:
    """The builder settings of a local session that loads the Delta jars (resolved from Maven
    Central through Ivy into :func:`ivy_cache`, only once) and Delta's SQL extension."""
    return {"spark.jars.packages": delta_package(conf), "spark.jars.ivy": ivy_cache(conf),
            **DELTA_SQL_CONF,
            # a snapshot's state is rebuilt in 50 tasks by default: for a local session's small
            # logs that is scheduling overhead only (a cluster keeps its own setting)
            "spark.databricks.delta.snapshotPartitions": "4"}

# Settings every session needs for correct results, whatever the environment.
_REQUIRED_SQL_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}

#: Defaults a job's session gets unless ``spark.extra`` or the launch (spark-submit ``--conf``,
#: a cluster's settings) names the key. Spark lists the paths of
#: a read in a Spark job of its own once there are more than 32 of them; the delta-rs engine
#: reads a table as its explicit list of live files, so past 32 files every read paid that job
#: (measured on the stream bench's warehouse: 0.35-0.9 s per read of a 87-146 file table, 0.05-0.1 s
#: listed on the driver). Listing on the driver up to 1,024 paths keeps a job for big raw folders.
#: Adaptive execution may also reshape a *cached* plan's partitions: without it a persisted frame
#: with a shuffle inside (ingest's dedupe window) keeps all ``spark.sql.shuffle.partitions`` of
#: it, and every later job reads and writes that many (bronze.events got 8 files a day instead of
#: 3 on `make run`'s store). Measured on `make run` (2026-12-06, two runs each, alternated):
#: ingest 26.7 / 24.8 s against 33.2 / 31.5 s, sessionize 14.7 / 14.2 against 17.0 / 15.7,
#: the whole run 223 / 213 s against 228 / 221, the same tables and models.
_DEFAULT_SQL_CONF = {
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "1024",
    "spark.sql.optimizer.canChangeCachedPlanOutputPartitioning": "true",
}


#: Spark SQL expressions interpreted instead of compiled (no whole-stage or expression code
#: generation): on a few thousand rows per stage compiling the generated Java costs more than it
#: saves. Same results (Spark tests both paths). Used by the stream's micro-batches
#: (``stream.small_batch_sql``) and by every test JVM (tests/jvm.py).
INTERPRETED_SQL = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}


def cache_jvm_lookups() -> None:
    """Make py4j remember the Java classes and static methods it has resolved (process-wide,
    idempotent).

    py4j asks the JVM to resolve a name on every access, and PySpark goes through it for every
    column function (``F.col`` is ``jvm.org.apache.spark.sql.functions`` then ``.col``, each a
    round trip); a short name (``jvm.functions``, ``jvm.PythonUtils``) is first tried as a
    top-level class, a lookup that fails only after searching every jar on the classpath.
    Measured on tests/spark/test_ingest.py (23 ingest runs): 27,700 such round trips, the driver's
    CPU 117 s -> 104 s with this cache. A resolved class or static method does not change while
    the JVM lives (static fields, whose values can, are not cached; a new gateway has new views).
    """
    try:
        from py4j import java_gateway as gw
    except ImportError:  # a Spark Connect client: no py4j, nothing to cache
        return
    if getattr(gw.JVMView, "_interest_cached", False):
        return
    view_lookup, class_lookup = gw.JVMView.__getattr__, gw.JavaClass.__getattr__

    def cached_view_lookup(self, name):
        value = view_lookup(self, name)
        if isinstance(value, gw.JavaClass):
            self.__dict__[name] = value  # found before __getattr__ from now on
        return value

    def cached_class_lookup(self, name):
        value = class_lookup(self, name)
        if isinstance(value, (gw.JavaMember, gw.JavaClass)):  # a static method or a nested class
            self.__dict__[name] = value
        return value

    gw.JVMView.__getattr__, gw.JavaClass.__getattr__ = cached_view_lookup, cached_class_lookup
    gw.JVMView._interest_cached = True


def unchosen_settings(spark: SparkSession, sconf: SparkConf, settings: dict) -> dict:
    """The entries of ``settings`` whose keys neither ``spark.extra`` nor the launch
    (spark-submit ``--conf``, a cluster's settings) names: the defaults the project may set."""
    launched = spark.sparkContext.getConf()
    return {k: v for k, v in settings.items() if k not in sconf.extra and not launched.contains(k)}


def _launched_by_spark_submit() -> bool:
    return "spark.master" in os.environ.get("PYSPARK_SUBMIT_ARGS", "") or bool(
        os.environ.get("SPARK_ENV_LOADED") or os.environ.get("DATABRICKS_RUNTIME_VERSION")
    )


def get_spark(conf: Config | SparkConf, spark: Optional[SparkSession] = None) -> SparkSession:
    """Return the job's SparkSession.

    Args:
        conf: the whole :class:`Config` or just its ``spark`` section. With the whole Config and
            ``storage.engine: delta-spark``, a session built here loads the Delta jars
            (:func:`delta_session_settings`); under spark-submit they come from ``--packages``.
        spark: an existing session (tests pass theirs); it only gets the required SQL settings.

    Returns:
        A session with UTC time zone and the configured shuffle / Arrow settings.

    Raises:
        DeltaJarsError: the Delta jars could not be resolved (names coordinates and Ivy cache).
    """
    sconf = conf.spark if isinstance(conf, Config) else conf
    cache_jvm_lookups()
    delta = (isinstance(conf, Config) and conf.storage.engine == "delta-spark"
             and not _launched_by_spark_submit())
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
        jars = delta_session_settings(conf.storage) if delta else {}
        settings = {**jars, **sconf.extra}
        if jars and sconf.extra.get("spark.jars.packages"):  # e.g. the Kafka source beside Delta
            settings["spark.jars.packages"] = _merge_packages(jars["spark.jars.packages"],
                                                              str(sconf.extra["spark.jars.packages"]))
        for key, value in settings.items():
            builder = builder.config(key, str(value))
        try:
            active = builder.getOrCreate()
        except Exception as exc:
            if not jars:
                raise
            raise DeltaJarsError(
                f"storage.engine=delta-spark: could not resolve or load the Delta jars "
                f"{jars['spark.jars.packages']} (Ivy cache {jars['spark.jars.ivy']}; Maven Central "
                "must be reachable the first time, the Ivy log above says what failed). Set "
                "storage.delta_package / storage.ivy_cache, or use storage.engine=delta-rs"
            ) from exc
        if not _launched_by_spark_submit():
            active.sparkContext.setLogLevel("ERROR")
    settings = unchosen_settings(active, sconf, _DEFAULT_SQL_CONF)
    settings.update(_REQUIRED_SQL_CONF)
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
    """Where Ivy keeps resolved Maven packages by default: ``$INTEREST_IVY_DIR``, else
    ``$XDG_CACHE_HOME/interest-evolution/ivy/pyspark-<version>`` (``~/.cache/...``), beside the
    project's other caches, so tests and jobs resolve a package once per machine. One folder per
    pyspark version: ``make test`` runs the two environments (pyspark 4.2 and 4.0) side by side,
    and two JVMs resolving into one Ivy cache at once can corrupt it."""
    if os.environ.get("INTEREST_IVY_DIR"):
        return os.environ["INTEREST_IVY_DIR"]
    import pyspark

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "interest-evolution", "ivy", f"pyspark-{pyspark.__version__}")


def _merge_packages(*lists: str) -> str:
    """Comma-separated Maven coordinates of every list, each once, in order."""
    out = []
    for coordinate in (c.strip() for listed in lists for c in listed.split(",")):
        if coordinate and coordinate not in out:
            out.append(coordinate)
    return ",".join(out)


def add_packages(sconf: SparkConf, coordinates: list[str]) -> None:
    """Add Maven ``coordinates`` (``group:artifact:version``) to ``spark.jars.packages`` in
    ``spark.extra`` (kept: packages already listed there), with the Ivy cache in
    :func:`ivy_cache_dir` unless ``spark.jars.ivy`` is set. Takes effect when the session is built
    (a running JVM cannot load them); spark-submit's ``--packages`` does the same on a cluster."""
    sconf.extra["spark.jars.packages"] = _merge_packages(str(sconf.extra.get("spark.jars.packages", "")),
                                                         ",".join(coordinates))
    sconf.extra.setdefault("spark.jars.ivy", ivy_cache_dir())


def kafka_package(artifact: str) -> str:
    """The Kafka source's coordinate for the running pyspark (``artifact`` + ``:<version>``)."""
    import pyspark

    return f"{artifact}:{pyspark.__version__}"
