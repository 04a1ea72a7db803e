"""The run store below the stages: the same operations on a local path and on an fsspec URL
(``memory://``), and run ids that carry the input table's identity (evaluate and score read
runs without importing training: tests/unit/test_import_arrows.py)."""

from __future__ import annotations

import json

import pytest
import torch

from interest_lib.runs import fs
from interest_lib.runs.store import (
    RunPointerError, RunStore, atomic_save, latest_pointer, latest_run, load_record,
    training_run_id, write_json, write_latest,
)

pytestmark = pytest.mark.unit


@pytest.fixture(params=["local", "memory"])
def store_root(request, tmp_path):
    """A run-store root: a plain local folder, or an fsspec in-memory URL (removed after)."""
    if request.param == "local":
        yield str(tmp_path / "runs")
        return
    root = f"memory://run-store-{tmp_path.name}"
    yield root
    fs.remove_tree(root)


def _finish(root: str, run_id: str, task: str = "migration", seed: int = 0) -> RunStore:
    store = RunStore(fs.join(root, run_id))
    store.create()
    write_json(store.lineage, {"run_id": run_id, "model": "m", "task": task, "table_version": 2})
    atomic_save({"model": {"w": torch.zeros(2)}, "state": {"epoch": 0}}, store.checkpoint(0))
    atomic_save({"model": {"w": torch.ones(2)}, "state": {"epoch": 1}}, store.checkpoint(1))
    store.append_epoch({"epoch": 1, "loss": 1.0})
    store.append_epoch({"epoch": 2, "loss": 0.5})
    gen = torch.Generator().manual_seed(seed)
    atomic_save({"task": task, "model_name": "m", "state_dict": {"w": torch.randn(3, generator=gen)}},
                store.model)
    return store


def test_a_run_is_written_published_and_found_again(store_root):
    store = _finish(store_root, "m-v2-abc")
    assert store.finished() and not store.has_inputs()
    assert store.latest_checkpoint() == store.checkpoint(1)
    assert load_record(store.latest_checkpoint())["state"]["epoch"] == 1
    lines = fs.read_bytes(store.epochs_log).decode().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert latest_run(store_root, "migration") is None  # finished but not published yet
    write_latest(store_root, "migration", store, "m", 2)
    found = latest_run(store_root, "migration")
    assert found == store and found.run_id == "m-v2-abc"
    assert found.read_lineage()["table_version"] == 2
    assert load_record(found.model)["model_name"] == "m"


def test_a_swapped_model_is_refused_on_any_filesystem(store_root):
    store = _finish(store_root, "run-a")
    write_latest(store_root, "migration", store, "m", 2)
    other = _finish(store_root, "run-b", seed=1)
    fs.write_bytes(store.model, fs.read_bytes(other.model))
    with pytest.raises(RunPointerError, match="SHA-256") as err:
        latest_run(store_root, "migration")
    assert latest_pointer(store_root, "migration") in str(err.value)


def test_removing_a_run_removes_all_of_it(store_root):
    store = _finish(store_root, "run-a")
    store.remove()
    assert not store.finished() and store.latest_checkpoint() is None and not fs.exists(store.root)


def test_locations_have_one_spelling(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert fs.canonical("runs") == fs.canonical(f"file://{tmp_path}/runs/") == str(tmp_path / "runs")
    assert fs.canonical("s3a://bucket/runs") == "s3://bucket/runs"
    assert fs.canonical("dbfs:/interest/runs") == "/dbfs/interest/runs"  # the Databricks FUSE mount
    assert RunStore("memory://x/r") == RunStore("memory:///x/r/")


SETTINGS = {"params": {"d_model": 64}, "train": {"epochs": 2}, "code": "abc"}


def test_two_warehouses_with_the_same_data_do_not_share_a_run(tmp_path, monkeypatch):
    """Today's bug: a second warehouse at the same table version reused the first one's finished
    run ("already trained"). The run id now carries the table's location."""
    a = training_run_id("m", str(tmp_path / "wh-a" / "gold" / "training_sequences"), 3, SETTINGS)
    b = training_run_id("m", str(tmp_path / "wh-b" / "gold" / "training_sequences"), 3, SETTINGS)
    assert a != b and a.startswith("m-v3-") and b.startswith("m-v3-")
    assert training_run_id("m", "s3a://lake/wh/gold/training_sequences", 3, SETTINGS) != \
        training_run_id("m", "s3a://other/wh/gold/training_sequences", 3, SETTINGS)


def test_the_same_warehouse_and_version_resume_the_same_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = str(tmp_path / "wh" / "gold" / "training_sequences")
    first = training_run_id("m", table, 3, SETTINGS)
    # however the location is spelled, and however often asked: the same id, so the same folder
    assert training_run_id("m", "wh/gold/training_sequences", 3, SETTINGS) == first
    assert training_run_id("m", f"file://{table}", 3, SETTINGS) == first
    assert training_run_id("m", table, 4, SETTINGS) != first  # a new table version: a new run
    assert training_run_id("m", table, 3, {**SETTINGS, "code": "def"}) != first
    store = RunStore(str(tmp_path / "runs" / first))
    atomic_save({"model": {"w": torch.zeros(1)}}, store.checkpoint(0))  # a run killed after epoch 1
    again = RunStore(str(tmp_path / "runs" / training_run_id("m", table, 3, SETTINGS)))
    assert again.latest_checkpoint() == store.checkpoint(0)  # resumed from its checkpoint


def test_run_id_for_takes_the_table_location(tmp_path):
    from interest_lib.conf import load_config
    from interest_lib.training.job import run_id_for

    conf = load_config()
    a = run_id_for(conf, "evolution_gru", str(tmp_path / "a" / "gold" / "training_sequences"), 1)
    b = run_id_for(conf, "evolution_gru", str(tmp_path / "b" / "gold" / "training_sequences"), 1)
    assert a != b
    assert a == run_id_for(conf, "evolution_gru", str(tmp_path / "a" / "gold" / "training_sequences"), 1)


@pytest.mark.parametrize("env, expected", [("cluster", "/data/interest-evolution/runs"),
                                           ("databricks", "dbfs:/interest-evolution/runs")])
def test_cluster_and_databricks_runs_share_one_store(env, expected):
    """Training, evaluate and score on a cluster find each other's runs: the overlays name a
    shared store (not the working directory's ./runs), and MLflow has somewhere to go."""
    from interest_lib.conf import load_config
    from interest_lib.runs.tracking import tracking_uri

    conf = load_config(env=env)
    assert conf.train.store == expected
    assert tracking_uri(conf) in ("databricks", "file:///data/interest-evolution/runs/mlruns")


def test_a_remote_store_without_a_tracking_uri_is_a_clear_error():
    from interest_lib.conf import load_config
    from interest_lib.runs.tracking import TrackingConfigError, tracking_uri

    with pytest.raises(TrackingConfigError, match="set tracking.uri"):
        tracking_uri(load_config(overrides=["train.store=s3a://lake/runs"]))
