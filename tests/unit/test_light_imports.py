"""The Spark-free readers stay Spark-free: importing them in a fresh interpreter loads neither
pyspark nor (for the readers and the run store) torch. Notebooks, benches and the BI view use
them without a JVM; evaluation and scoring read their inputs and runs through them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.unit, pytest.mark.card_env]  # run again in .venv-card (pyarrow 14, pandas 2.2)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _loaded_after_import(module: str, heavy: tuple[str, ...]) -> list[str]:
    code = (f"import sys, {module}\n"
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, check=True).stdout.strip()
    return [m for m in out.split(",") if m]


@pytest.mark.parametrize("module", [
    "interest_lib.storage", "interest_lib.storage.snapshot", "interest_lib.storage.arrays",
    "interest_lib.storage.arrow_snapshot", "interest_lib.storage.catalog",
    "interest_lib.runs.store", "interest_lib.runs.fs",
])
def test_the_reader_and_the_run_store_import_without_spark_or_torch(module):
    assert _loaded_after_import(module, ("pyspark", "torch")) == []


def test_tables_still_load_from_the_package_on_first_use():
    assert _loaded_after_import("interest_lib.storage; interest_lib.storage.Tables", ("pyspark",)) == ["pyspark"]
