"""A real Kafka broker for the tests: one KRaft node (broker + controller) on 127.0.0.1.

The broker's jars (``org.apache.kafka:kafka_2.13`` and its dependencies) come from Maven Central
through Ivy (the ``ivy`` jar pyspark ships), retrieved once into
``<interest_lib.spark.ivy_cache_dir()>-kafka-broker/<version>/jars``; then ``kafka-storage format``
(``kafka.tools.StorageTool``) and ``kafka.Kafka server.properties`` run on the installed Java.
If any step fails, :class:`BrokerError` carries the command and the tail of its output.
"""

from __future__ import annotations

import contextlib
import glob
import os
import socket
import subprocess
import time
import uuid
from typing import Iterator

from tests.ports import free_ports

KAFKA_VERSION = "3.9.1"


class BrokerError(RuntimeError):
    """The broker could not be resolved, formatted or started (the message says which and why)."""


def _run(cmd: list[str], what: str, timeout: float) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f"{what}: {' '.join(cmd[:6])} ... failed: {exc}") from None
    if out.returncode != 0:
        raise BrokerError(f"{what}: exit {out.returncode}: {(out.stdout + out.stderr)[-2000:]}")
    return out.stdout


def broker_jars(version: str = KAFKA_VERSION) -> str:
    """The folder of the broker's jars, resolved from Maven Central on first use."""
    import pyspark

    from interest_lib.spark import ivy_cache_dir

    root = os.path.join(ivy_cache_dir() + "-kafka-broker", version)
    jars = os.path.join(root, "jars")
    if glob.glob(os.path.join(jars, f"kafka_2.13-{version}.jar")):
        return jars
    ivy = glob.glob(os.path.join(os.path.dirname(pyspark.__file__), "jars", "ivy-*.jar"))
    if not ivy:
        raise BrokerError("no ivy jar in pyspark/jars to resolve the Kafka broker with")
    _run(["java", "-cp", ivy[0], "org.apache.ivy.Main", "-dependency", "org.apache.kafka", "kafka_2.13", version,
          "-confs", "default", "-cache", os.path.join(root, "cache"),
          "-retrieve", os.path.join(jars, "[artifact]-[revision](-[classifier]).[ext]")],
         f"resolving org.apache.kafka:kafka_2.13:{version} from Maven Central", timeout=900)
    return jars


@contextlib.contextmanager
def kafka_broker(workdir: str, startup_timeout: float = 180) -> Iterator[str]:
    """Start a one-node KRaft broker under ``workdir``; yield its bootstrap address; stop it (by
    its process id) on exit, even on failure."""
    jars = broker_jars()
    cp = os.path.join(jars, "*")
    broker, controller = free_ports(2)
    logs = os.path.join(workdir, "kafka-logs")
    props = os.path.join(workdir, "server.properties")
    with open(props, "w") as fh:
        fh.write("\n".join([
            "process.roles=broker,controller", "node.id=1", f"controller.quorum.voters=1@127.0.0.1:{controller}",
            f"listeners=PLAINTEXT://127.0.0.1:{broker},CONTROLLER://127.0.0.1:{controller}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{broker}", "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT", f"log.dirs={logs}",
            "offsets.topic.replication.factor=1", "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1", "num.partitions=2", "group.initial.rebalance.delay.ms=0", ""]))
    java = ["java", "-Xmx384m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", cp]
    _run([*java, "kafka.tools.StorageTool", "format", "-t", uuid.uuid4().hex[:22], "-c", props],
         "kafka-storage format", timeout=180)
    log_path = os.path.join(workdir, "broker.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([*java, "kafka.Kafka", props], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise BrokerError(f"kafka.Kafka exited with {proc.returncode}: {open(log_path).read()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", broker), timeout=1):
                break
            if time.monotonic() > deadline:
                raise BrokerError(f"broker not listening on 127.0.0.1:{broker} after {startup_timeout} s: "
                                  f"{open(log_path).read()[-2000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{broker}"
    finally:
        proc.kill()
        proc.wait(timeout=60)
