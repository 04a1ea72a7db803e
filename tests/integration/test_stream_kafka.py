"""``interest stream`` with the Kafka source against a real broker (KRaft, 127.0.0.1) started from
the Apache Kafka artifacts on Maven Central (tests/kafka_broker.py); the Spark Kafka source
(spark-sql-kafka-0-10) is resolved through spark.jars.packages into the project's Ivy cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from interest_lib.storage.arrow_snapshot import read_snapshot
from tests.jvm import write_conf_file
from tests.kafka_broker import kafka_broker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]  # minutes under the shared machine's load
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOPIC = "interest-events-test"


def ev(eid, user, ts):
    return json.dumps({"event_id": eid, "user_id": user, "item_id": "i1", "category_id": "c1",
                       "category_path": "root/c1", "event_type": "view", "event_time": ts})


MESSAGES = [ev(f"k{i}", f"user{i % 2}", f"2026-03-0{1 + i}T10:00:00Z") for i in range(1, 7)] + [
    ev("k3", "user1", "2026-03-04T10:00:00Z"),   # a duplicate
    "not json at all",                          # malformed_record
    ev("k9", "", "2026-03-05T10:00:00Z"),        # missing_user_id
]


def _stream(root: str, bootstrap: str) -> subprocess.CompletedProcess:
    conf_file = write_conf_file(os.path.join(root, "test-spark.yml"))
    settings = [f"storage.warehouse={root}/warehouse", f"storage.raw_dir={root}/raw", "stream.source=kafka",
                f"stream.kafka_bootstrap_servers={bootstrap}", f"stream.kafka_topic={TOPIC}", "stream.score=false",
                "stream.watermark_minutes=100000", "spark.master=local[2]", "spark.shuffle_partitions=2"]
    cmd = [sys.executable, "-m", "interest_lib.cli", "stream", "--trigger", "available_now", "--conf-file", conf_file,
           *[x for s in settings for x in ("--set", s)]]
    env = dict(os.environ, PYTHONPATH=REPO, PYSPARK_PYTHON=sys.executable)
    return subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=900)


def test_kafka_messages_reach_bronze_once_with_reasons(tmp_path):
    from kafka import KafkaProducer

    root = str(tmp_path)
    with kafka_broker(root) as bootstrap:
        producer = KafkaProducer(bootstrap_servers=bootstrap)
        for message in MESSAGES:
            producer.send(TOPIC, message.encode())
        producer.flush()
        producer.close()
        first = _stream(root, bootstrap)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        again = _stream(root, bootstrap)  # restart from the checkpoint: nothing new on the topic
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "rows in 9 = accepted 6 + quarantined 2 + duplicates removed 1" in first.stdout
    assert "0 micro-batches" in again.stdout
    bronze = read_snapshot(os.path.join(root, "warehouse", "bronze", "events")).to_pylist()
    assert sorted(r["event_id"] for r in bronze) == [f"k{i}" for i in range(1, 7)]
    quarantine = read_snapshot(os.path.join(root, "warehouse", "bronze", "events_quarantine")).to_pylist()
    assert Counter(r["reason"] for r in quarantine) == {"malformed_record": 1, "missing_user_id": 1}
    assert all(r["source_file"].startswith(f"kafka:{TOPIC}/") for r in quarantine)
