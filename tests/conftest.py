"""Shared fixtures: one local Spark session for the whole run, and a config in a temp folder; the
collection fails when a test is not of exactly one kind (unit, spark, integration, cluster, card)."""

from __future__ import annotations

import os
import sys
import time

import pytest

from tests.jvm import FAST_JVM
from tests.kinds import kind_problems

# Collected timestamps are converted with the Python process' local zone; pin it to UTC like Spark.
os.environ["TZ"] = "UTC"
time.tzset()

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def pytest_collection_modifyitems(config, items):
    """Fail the run when a test is not of exactly one kind (tests/kinds.py)."""
    problems = kind_problems(items)
    if problems:
        raise pytest.UsageError("tests without exactly one kind marker:\n" + "\n".join(problems))


@pytest.fixture(scope="session")
def spark():
    """A real local Spark session (2 cores) with the project's required settings; its JVM runs
    with tests/jvm.FAST_JVM."""
    from interest_lib.conf import load_config
    from interest_lib.spark import get_spark

    conf = load_config(overrides=["spark.master=local[2]", "spark.shuffle_partitions=4",
                                  "spark.driver_memory=2g"])
    # INTEREST_TEST_JVM_OPTS="" gives the JVM's defaults (C2, G1) back.
    opts = os.environ.get("INTEREST_TEST_JVM_OPTS", FAST_JVM)
    if opts:
        conf.spark.extra["spark.driver.extraJavaOptions"] = opts
    session = get_spark(conf)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def generated_stores(spark, tmp_path_factory):
    """Generated stores cached by their settings (tests/stores.py): ``.copy_to(settings, root)``."""
    from tests.stores import GeneratedStores, cache_root

    return GeneratedStores(spark, cache_root(tmp_path_factory.getbasetemp()))


@pytest.fixture
def tmp_conf(tmp_path):
    """A Config whose warehouse and raw folders are under a fresh temp directory."""
    from interest_lib.conf import load_config

    return load_config(overrides=[
        f"storage.warehouse={tmp_path / 'warehouse'}",
        f"storage.raw_dir={tmp_path / 'raw'}",
        "spark.master=local[2]",
        "spark.shuffle_partitions=4",
    ])


@pytest.fixture
def tables(spark, tmp_conf):
    """The table API over the temp warehouse."""
    from interest_lib.storage import Tables

    return Tables(spark, tmp_conf.storage)
