"""Test helpers: independent readers of Delta tables (delta-rs only, no Spark), the checks
of a scored row that every scoring test shares, and a bench script loaded as a module."""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Optional

import pyarrow as pa

from interest_lib.storage.arrow_snapshot import delta_rs_engine_usable, plain_types, read_snapshot
from tests.stores import REPO


def read_with_delta_rs(path: str, version: Optional[int] = None) -> pa.Table:
    """Read a Delta table with delta-rs' own query engine, as a non-Spark consumer would.

    Under pyarrow < 16 (the card environment's 14.0.2) the engine's string_view columns cannot
    be imported, so the snapshot's files (listed by delta-rs) are read with pyarrow instead."""
    if not delta_rs_engine_usable():
        return read_snapshot(path, version)
    from deltalake import DeltaTable, QueryBuilder

    table = DeltaTable(path, version=version)
    return pa.table(QueryBuilder().register("t", table).execute("SELECT * FROM t").read_all())


def read_as_bi(path: str):
    """A Delta table as a pandas DataFrame through delta-rs only, as a BI tool reads it."""
    return plain_types(read_with_delta_rs(path)).to_pandas()


def assert_valid_window_scores(scores, score_conf) -> None:
    """Every row of ``scores`` (gold.user_interest_scores rows of the window path, as pandas) is a
    valid forecast under ``score_conf`` (conf.score): top-K next categories with descending
    probabilities summing to at most 1, a switch probability, at most forecast-K forecast shares
    summing to at most 1, and a known stage."""
    import numpy as np

    for row in scores.itertuples():
        probs = np.asarray(row.next_probs)
        assert len(row.next_categories) == score_conf.top_k == len(probs)
        assert np.all(np.diff(probs) <= 1e-7) and 0 < probs.sum() <= 1 + 1e-5
        assert 0 <= row.p_switch <= 1
        assert 0 < len(row.forecast_categories) <= score_conf.forecast_k
        assert sum(row.forecast_shares) <= 1 + 1e-5
        assert row.forecast_stage in ("initial", "developing", "stable", "fading")


def load_bench(name: str) -> ModuleType:
    """``bench/<name>.py`` loaded as a module (bench/ is a folder of scripts, not a package)."""
    path = REPO / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
