"""Fixture: a Spark standalone master and two 1-core workers on 127.0.0.1 (see standalone.py).

The cluster is stopped (process groups killed) at the end of the module whatever happened; a
failing test that used it gets the daemons' and the executors' logs appended to its report.
"""

from __future__ import annotations

import pytest

from tests.cluster.standalone import SPARK_HOME, StandaloneCluster, start_cluster


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test that used the cluster gets the daemons' and executors' logs in its report."""
    outcome = yield
    report = outcome.get_result()
    cluster = getattr(item, "funcargs", {}).get("standalone_cluster")
    if report.failed and isinstance(cluster, StandaloneCluster):
        report.sections.append(("standalone cluster logs", cluster.dump_logs()))


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    """A running master + two 1-core workers on 127.0.0.1; stopped at the end in every case."""
    if not (SPARK_HOME / "bin" / "spark-class").exists():
        pytest.fail(f"{SPARK_HOME}/bin/spark-class missing: pyspark's launch scripts are needed")
    cluster = start_cluster(tmp_path_factory.mktemp("standalone"))
    try:
        yield cluster
    finally:
        cluster.stop()
