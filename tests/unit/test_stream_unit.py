"""Pieces of ``interest stream`` that need no Spark: package resolution settings, the progress
line, the checkpoint location and the stream's configuration limits."""

from __future__ import annotations

import pytest

from interest_lib.conf import ConfigError, load_config
from interest_lib.spark import add_packages, ivy_cache_dir, kafka_package
from interest_lib.streaming.job import checkpoint_path, progress_line
from interest_lib.streaming.micro_batch import BatchReport

pytestmark = pytest.mark.unit


def test_packages_are_added_once_with_the_project_ivy_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("INTEREST_IVY_DIR", raising=False)
    conf = load_config(overrides=["spark.extra.spark.jars.packages=io.delta:delta-spark_2.13:4.0.0"])
    coordinate = kafka_package(conf.stream.kafka_package)
    add_packages(conf.spark, [coordinate])
    add_packages(conf.spark, [coordinate])
    assert conf.spark.extra["spark.jars.packages"] == f"io.delta:delta-spark_2.13:4.0.0,{coordinate}"
    import pyspark

    assert conf.spark.extra["spark.jars.ivy"] == ivy_cache_dir() == str(
        tmp_path / "interest-evolution" / "ivy" / f"pyspark-{pyspark.__version__}")

    assert coordinate == f"org.apache.spark:spark-sql-kafka-0-10_2.13:{pyspark.__version__}"


def test_progress_line_reports_rates_duration_and_lag():
    report = BatchReport(3, files={"file:///l/a.jsonl": 100.0, "file:///l/b.jsonl": 104.0}, finished_at=130.0)
    progress = {"batchId": 3, "numInputRows": 2000, "inputRowsPerSecond": 400.0, "processedRowsPerSecond": 80.0,
                "batchDuration": 25000, "sources": [{"metrics": {"avgOffsetsBehindLatest": "12.0",
                                                                 "maxOffsetsBehindLatest": "20"}}]}
    line = progress_line(progress, report)
    assert "batch 3: 2,000 input rows" in line and "400.0 rows/s in" in line and "80.0 rows/s processed" in line
    assert "batch duration 25.0 s" in line and "lag 30.0 s since the oldest file landed" in line
    assert "offsets behind latest: avg 12.0, max 20" in line


def test_checkpoint_defaults_under_the_warehouse_and_stream_settings_are_checked(tmp_path):
    conf = load_config(overrides=[f"storage.warehouse={tmp_path}", "stream.query_name=q1"])
    assert checkpoint_path(conf) == f"{tmp_path}/_checkpoints/q1"
    for bad in ("stream.source=mqtt", "stream.max_files_per_trigger=0", "stream.trigger=sometimes"):
        with pytest.raises(ConfigError, match=bad.split("=")[0].replace(".", r"\.")):
            load_config(overrides=[bad])
