"""The session factory's py4j lookup cache (interest_lib.spark.cache_jvm_lookups)."""

from __future__ import annotations

import threading

import pytest
from pyspark.sql import functions as F

pytestmark = pytest.mark.spark


def _commands_sent(spark, action) -> int:
    """How many py4j commands ``action()`` sends to the JVM from this thread.

    Only this thread's: py4j's finalizer thread sends the JVM a release command for every Java
    object proxy Python frees, in batches whenever it runs, so counting every thread made the
    count depend on what earlier tests left for the garbage collector (a clean-clone run once
    counted 204 commands for 50 calls)."""
    client = spark.sparkContext._gateway._gateway_client
    sent = []
    send = client.send_command
    me = threading.get_ident()

    def counting(command, *args, **kwargs):
        if threading.get_ident() == me:
            sent.append(command)
        return send(command, *args, **kwargs)

    client.send_command = counting
    try:
        action()
    finally:
        del client.send_command  # the class's method again
    return len(sent)


def test_a_column_function_costs_one_round_trip_once_its_class_is_resolved(spark):
    F.col("warm_up")  # resolves org.apache.spark.sql.functions and its static method col
    # Uncached, each call asks the JVM for the class, then for the method, then calls it.
    assert _commands_sent(spark, lambda: [F.col(f"c{i}") for i in range(50)]) == 50
    jvm = spark._jvm
    assert jvm.PythonUtils is jvm.PythonUtils  # a short name: resolved once, not per access


def test_static_fields_are_read_from_the_jvm_every_time(spark):
    integer = spark._jvm.java.lang.Integer
    assert integer.MAX_VALUE == 2**31 - 1
    assert "MAX_VALUE" not in vars(integer)  # a field's value can change: never cached
    assert _commands_sent(spark, lambda: integer.MAX_VALUE) == 1
