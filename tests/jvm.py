"""Spark settings of the tests' drivers: the session fixture's and those of the jobs the tests
start as processes (kept apart from tests/helpers.py so that conftest imports neither pyarrow nor
pyspark). One place, so the session and every subprocess run the same way."""

from __future__ import annotations

import json
import os

from tests.jvm_archive import USE, class_archive

#: C1 only (no C2 compiler threads) and the serial collector. Test data are small, so the JVM's
#: time goes to class loading, planning and code generation rather than hot loops. Measured under
#: load: the session JVM's CPU time over tests/spark/test_sessionize.py fell from 114 s to 62 s,
#: and ``interest featurize`` on the integration store from 89 s to 57 s (whole process tree).
#: With C1 only the JVM reserves a 48 MB code cache (240 MB with tiered compilation); one session
#: serving the whole suite with the Delta jars loaded filled it ("Out of space in CodeCache") and
#: the JVM died mid-suite, so the cache gets the tiered default's room back (reserved, not used).
FAST_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=256m"

#: Expressions interpreted instead of compiled (no whole-stage or expression code generation):
#: on a few thousand rows compiling the generated Java costs more than it saves. Same results
#: (Spark tests both paths); jobs outside the tests keep code generation, but for the stream's
#: micro-batches (interest_lib.spark.INTERPRETED_SQL, the same two settings: not imported here,
#: that module loads pyspark). Measured on one core
#: (2026-12-03): tests/spark/test_sessionize.py + test_features.py 116 s -> 89 s,
#: tests/spark/test_stream.py 84 s -> 72 s. INTEREST_TEST_CODEGEN=1 turns code generation back on.
NO_CODEGEN = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}


#: PySpark's DataFrame debugging context off: with it on, every PySpark API call (``F.col``,
#: ``df.select``, ...) looks up the active session, captures the Python call stack and sets and
#: clears the JVM's call-site origin, five to eight py4j round trips per call, so that an
#: analysis error can name the Python line. Test failures name it in their traceback anyway.
#: Measured on tests/spark/test_ingest.py: 117 -> 110 CPU s (driver + JVM) with it off.
QUIET_PYSPARK = {"spark.python.sql.dataFrameDebugging.enabled": "false"}


def spark_settings(executors: bool = False) -> dict:
    """``spark.extra`` of every test driver: :data:`FAST_JVM` (for the executors' JVMs too with
    ``executors``), :data:`QUIET_PYSPARK`, and :data:`NO_CODEGEN` unless INTEREST_TEST_CODEGEN=1; INTEREST_TEST_JVM_OPTS
    replaces the JVM options ("" keeps the JVM's defaults); the class archive of
    :mod:`tests.jvm_archive` (built on first use) is added unless INTEREST_TEST_CDS=0."""
    opts = os.environ.get("INTEREST_TEST_JVM_OPTS", FAST_JVM)
    archive = class_archive()
    if archive:
        opts = f"{opts} {USE.format(path=archive)}".strip()
    settings = {} if os.environ.get("INTEREST_TEST_CODEGEN") == "1" else dict(NO_CODEGEN)
    settings.update(QUIET_PYSPARK)
    if opts:
        settings["spark.driver.extraJavaOptions"] = opts
        if executors:
            settings["spark.executor.extraJavaOptions"] = opts
    return settings


def submit_args(executors: bool = False) -> list[str]:
    """:func:`spark_settings` as spark-submit ``--conf`` arguments."""
    return [x for k, v in spark_settings(executors).items() for x in ("--conf", f"{k}={v}")]


def write_conf_file(path) -> str:
    """A ``--conf-file`` holding :func:`spark_settings` (JSON is YAML); returns its path."""
    with open(path, "w") as fh:
        json.dump({"spark": {"extra": spark_settings()}}, fh)
    return str(path)
