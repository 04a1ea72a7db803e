"""Logging and per-stage progress lines ("stage X: N rows in T s")."""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from typing import Iterator

LOGGER_NAME = "interest_lib"


def setup_logging(level: str = "INFO") -> logging.Logger:
    """Configure the project's logger once (stderr, timestamped) and return it."""
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper())
    return logger


def get_logger(name: str) -> logging.Logger:
    """A child of the project logger, e.g. ``get_logger(__name__)``."""
    return logging.getLogger(f"{LOGGER_NAME}.{name.removeprefix(LOGGER_NAME + '.')}")


@contextmanager
def _spark_job_description(text: str) -> Iterator[None]:
    """Label the Spark jobs run inside with ``text`` (the UI's job description, e.g.
    ``ingest.job: read+validate``), when a SparkContext is active; the previous label comes back."""
    pyspark = sys.modules.get("pyspark")  # never import Spark from here: logs stays light
    sc = pyspark.SparkContext._active_spark_context if pyspark is not None else None
    if sc is None:
        yield
        return
    previous = sc.getLocalProperty("spark.job.description")
    sc.setJobDescription(text)
    try:
        yield
    finally:
        sc.setLocalProperty("spark.job.description", previous)


class StageTimer:
    """Collects (stage, seconds, counts) for the job's closing summary."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger
        self.stages: list[tuple[str, float, dict]] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[dict]:
        """Time a stage; put counts into the yielded dict and they are logged with the time."""
        counts: dict = {}
        self.logger.info("stage %s: started", name)
        start = time.perf_counter()
        with _spark_job_description(f"{self.logger.name.removeprefix(LOGGER_NAME + '.')}: {name}"):
            yield counts
        elapsed = time.perf_counter() - start
        self.stages.append((name, elapsed, counts))
        detail = ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in counts.items())
        self.logger.info("stage %s: done in %.1f s%s", name, elapsed, f" ({detail})" if detail else "")
