"""The job base class: owns configuration, logging, the SparkSession and the table API.

Each job is a subclass with ``name``, ``help``, optional ``add_arguments`` and ``launch()``.
Tests construct a task with their own ``spark`` and ``conf``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Optional

from pyspark.sql import SparkSession

from interest_lib.conf import Config
from interest_lib.logs import setup_logging
from interest_lib.spark import get_spark
from interest_lib.storage import Tables
from interest_lib.storage.catalog import check_warehouse


class Task:
    """Base of every job: ``Task(conf, spark).launch()`` runs it."""

    name = "task"
    help = ""

    def __init__(self, conf: Config, spark: Optional[SparkSession] = None,
                 args: Optional[argparse.Namespace] = None):
        self.conf = conf
        self.args = args or argparse.Namespace()
        self.logger = setup_logging(conf.run.log_level)
        self._spark = spark
        self._spark_ready = False  # the session's settings are applied once, on first use
        self._tables: Optional[Tables] = None

    @property
    def spark(self) -> SparkSession:
        """The session (the given one, or one built from ``conf.spark``), set up on first use."""
        if not self._spark_ready:
            # every job that needs Spark writes the warehouse: refuse a bad one before the JVM starts
            check_warehouse(self.conf.storage.warehouse)
            self._spark = get_spark(self.conf, self._spark)
            self._spark_ready = True
        return self._spark

    @property
    def tables(self) -> Tables:
        """The table API over ``conf.storage``."""
        if self._tables is None:
            check_warehouse(self.conf.storage.warehouse)  # a file or read-only folder: refused now
            self._tables = Tables(self.spark, self.conf.storage)
        return self._tables

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the job's own command-line options (none by default)."""

    def launch(self) -> Any:
        """Run the job; return its report."""
        raise NotImplementedError

    def run(self) -> Any:
        """Log the resolved configuration, launch, and log the total time."""
        self.logger.info("job %s starting; configuration: %s", self.name,
                         json.dumps(self.conf.to_dict(), default=str))
        start = time.perf_counter()
        result = self.launch()
        self.logger.info("job %s finished in %.1f s", self.name, time.perf_counter() - start)
        return result
