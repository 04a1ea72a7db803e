"""The ``latest-<task>.json`` pointer that evaluate and score follow is verified against the run
store before any model is loaded: a pointer naming a missing or foreign run, a pointer whose
lineage does not match, and a model file swapped after the run finished are refused with an
error naming the pointer."""

from __future__ import annotations

import json
import os

import pytest
import torch

from interest_lib.training.store import (
    RunPointerError, RunStore, atomic_save, latest_pointer, latest_run, load_record, write_json,
    write_latest,
)

pytestmark = pytest.mark.unit


def _finished_run(root, run_id: str, task: str = "migration", model: str = "migration_transformer",
                  table_version: int = 3, seed: int = 0) -> RunStore:
    """A run folder as run_train leaves it: lineage.json and a final model record."""
    store = RunStore(os.path.join(str(root), run_id))
    write_json(store.lineage, {"run_id": run_id, "model": model, "task": task,
                               "table_version": table_version})
    gen = torch.Generator().manual_seed(seed)
    atomic_save({"task": task, "model_name": model, "state_dict": {"w": torch.randn(4, 3, generator=gen)},
                 "best": 0.5, "history": []}, store.model)
    return store


def _pointer(root, task="migration") -> dict:
    with open(latest_pointer(str(root), task)) as fh:
        return json.load(fh)


def _rewrite_pointer(root, task="migration", **changes) -> None:
    record = {**_pointer(root, task), **changes}
    write_json(latest_pointer(str(root), task), record)


def test_a_pointer_to_a_finished_run_is_followed(tmp_path):
    store = _finished_run(tmp_path, "run-a")
    write_latest(str(tmp_path), "migration", store, "migration_transformer", 3)
    found = latest_run(str(tmp_path), "migration")
    assert found == store
    assert load_record(found.model)["model_name"] == "migration_transformer"
    assert len(_pointer(tmp_path)["model_sha256"]) == 64
    assert latest_run(str(tmp_path), "evolution") is None  # never trained: no pointer, no error


def test_a_swapped_model_file_is_refused_before_loading(tmp_path):
    store = _finished_run(tmp_path, "run-a")
    write_latest(str(tmp_path), "migration", store, "migration_transformer", 3)
    other = _finished_run(tmp_path, "run-b", seed=1)  # a valid model, but not this run's
    os.replace(other.model, store.model)
    with pytest.raises(RunPointerError) as err:
        latest_run(str(tmp_path), "migration")
    message = str(err.value)
    assert latest_pointer(str(tmp_path), "migration") in message and "SHA-256" in message
    assert "interest train --model migration" in message


@pytest.mark.parametrize("changes, why", [
    ({"run_id": "run-b"}, "disagree"),                 # another run: its lineage says another id/model
    ({"run_id": "../elsewhere"}, "not the name of a run folder"),
    ({"run_id": "run-missing"}, "no final model"),
    ({"table_version": 7}, "table_version"),
    ({"model": "markov"}, "model"),
    ({"model_sha256": None}, "model_sha256"),
])
def test_a_tampered_pointer_is_refused(tmp_path, changes, why):
    store = _finished_run(tmp_path, "run-a")
    _finished_run(tmp_path, "run-b", task="evolution", model="evolution_gru", seed=1)
    write_latest(str(tmp_path), "migration", store, "migration_transformer", 3)
    _rewrite_pointer(tmp_path, **changes)
    with pytest.raises(RunPointerError, match=why) as err:
        latest_run(str(tmp_path), "migration")
    assert latest_pointer(str(tmp_path), "migration") in str(err.value)


def test_an_unreadable_pointer_is_refused(tmp_path):
    with open(latest_pointer(str(tmp_path), "migration"), "w") as fh:
        fh.write('{"run_id": ')
    with pytest.raises(RunPointerError, match="unreadable run pointer"):
        latest_run(str(tmp_path), "migration")
