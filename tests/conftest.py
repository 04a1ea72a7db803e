"""Shared fixtures: one local Spark session for the whole run, and a config in a temp folder; the
collection fails when a test is not of exactly one kind (unit, spark, integration, cluster, card)."""

from __future__ import annotations

import os
import sys
import time

import pytest

from tests import cpu_time
from tests.jvm import spark_settings
from tests.kinds import kind_problems

# Collected timestamps are converted with the Python process' local zone; pin it to UTC like Spark.
os.environ["TZ"] = "UTC"
time.tzset()

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def pytest_configure(config):
    """CPU seconds per test printed at the end (tests/cpu_time.py)."""
    cpu_time.register(config)


def pytest_collection_modifyitems(config, items):
    """Fail the run when a test is not of exactly one kind (tests/kinds.py)."""
    problems = kind_problems(items)
    if problems:
        raise pytest.UsageError("tests without exactly one kind marker:\n" + "\n".join(problems))


@pytest.fixture(scope="session")
def spark():
    """A real local Spark session (2 cores) with the project's required settings and the Delta
    jars (resolved once into the Ivy cache, interest_lib.spark.ivy_cache): one JVM serves both
    engines, chosen per table API by ``storage.engine``; its JVM runs with tests/jvm.spark_settings()."""
    from interest_lib.conf import load_config
    from interest_lib.spark import get_spark

    conf = load_config(overrides=["spark.master=local[2]", "spark.shuffle_partitions=4",
                                  "spark.driver_memory=2g", "storage.engine=delta-spark"])
    conf.spark.extra.update(spark_settings())
    session = get_spark(conf)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def generated_stores(spark, tmp_path_factory):
    """Generated stores cached by their settings (tests/stores.py): ``.copy_to(settings, root)``."""
    from tests.stores import GeneratedStores, cache_root

    return GeneratedStores(spark, cache_root(tmp_path_factory.getbasetemp()))


#: The engine of tests that do not choose one: the session has the Delta jars, so ``auto``
#: would pick delta-spark; the suite's default stays delta-rs (the local default, no jars) and
#: the tests of both engines ask for ``engine`` (below).
TEST_ENGINE = "storage.engine=delta-rs"


@pytest.fixture
def tmp_conf(tmp_path):
    """A Config whose warehouse and raw folders are under a fresh temp directory (delta-rs)."""
    from interest_lib.conf import load_config

    return load_config(overrides=[
        f"storage.warehouse={tmp_path / 'warehouse'}",
        f"storage.raw_dir={tmp_path / 'raw'}",
        "spark.master=local[2]",
        "spark.shuffle_partitions=4",
        TEST_ENGINE,
    ])


@pytest.fixture(params=["delta-rs", "delta-spark"])
def engine(request, tmp_conf):
    """Each engine in turn: sets ``storage.engine`` of ``tmp_conf`` (so ``tables`` uses it)."""
    tmp_conf.storage.engine = request.param
    return request.param


@pytest.fixture
def tables(request, spark, tmp_conf):
    """The table API over the temp warehouse, on ``tmp_conf``'s engine (delta-rs unless the test
    asks for ``engine``)."""
    from interest_lib.storage import Tables

    if "engine" in request.fixturenames:
        request.getfixturevalue("engine")  # set the engine before the table API is built

    return Tables(spark, tmp_conf.storage)
