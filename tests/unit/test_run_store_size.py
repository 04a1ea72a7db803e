"""The run store keeps frozen text tables once, not in every checkpoint: checkpoints hold the
trained weights, optimizer and state plus a reference (SHA-256 of inputs.npz, ref table
versions); only the newest checkpoint is kept; a finished run keeps model.pt (with the tables
once) and drops what only resume needed. Resume with text stays exact."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch

from interest_lib.models.inference import load_trained
from interest_lib.runs import fs
from interest_lib.training.loop import load_text_matrix
from interest_lib.training.store import RunStore, load_record
from tests.unit.test_models import SIZES
from tests.unit.test_safe_loading import _train, leave_no_process_group, table  # noqa: F401 (fixtures)

pytestmark = pytest.mark.unit
DIM = 384  # the sentence model's width: what made checkpoints large on real data


def _with_text(root: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write a run's inputs.npz as the driver does (item and event-text matrices)."""
    rng = np.random.default_rng(seed)
    items = rng.normal(size=(SIZES.items + 1, DIM)).astype(np.float32)
    texts = rng.normal(size=(SIZES.texts + 1, DIM)).astype(np.float32)
    os.makedirs(root, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, items=items, texts=texts)
    fs.write_bytes(os.path.join(root, "inputs.npz"), buf.getvalue())
    return items, texts


def test_checkpoints_reference_the_frozen_tables_and_only_the_newest_is_kept(table, tmp_path):
    store = RunStore(str(tmp_path / "run"))
    items, texts = _with_text(store.root)
    _train(table, store.root, epochs=3)
    # Only the newest checkpoint survives; it holds no frozen table, only its reference.
    assert [os.path.basename(p) for p in fs.glob(fs.join(store.checkpoints, "*"))] == ["epoch-002.pt"]
    ckpt = load_record(store.checkpoint(2))
    assert not any("item_text" in k or "event_text" in k for k in ckpt["model"])
    assert not any("item_text" in k for k in ckpt["state"]["best_state"])
    from interest_lib.runs.store import file_sha256

    assert ckpt["frozen"]["inputs_sha256"] == file_sha256(store.inputs)
    table_bytes = items.nbytes + texts.nbytes

    def tensors(obj):
        if isinstance(obj, torch.Tensor):
            yield obj
        elif isinstance(obj, dict):
            for v in obj.values():
                yield from tensors(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                yield from tensors(v)
    assert not [t for t in tensors(ckpt) if t.shape in (items.shape, texts.shape)]
    # model.pt carries the tables once, outside the state dict, and loads with them.
    record = load_record(store.model)
    assert "encoder.item_text" not in record["state_dict"]
    weights = sum(t.nbytes for t in record["state_dict"].values())
    assert table_bytes + weights <= os.path.getsize(store.model) < 2 * table_bytes + weights
    model, _ = load_trained(store.model)
    assert torch.equal(model.encoder.item_text, torch.from_numpy(items))
    assert torch.equal(model.encoder.event_text, torch.from_numpy(texts))
    # Finished: checkpoints and inputs.npz go; the text is still found (in model.pt).
    store.prune_finished()
    assert not fs.exists(store.checkpoints) and not store.has_inputs() and store.finished()
    assert sorted(os.listdir(store.root)) == ["epochs.jsonl", "model.pt"]
    assert store.size_bytes() == sum(os.path.getsize(os.path.join(store.root, f)) for f in os.listdir(store.root))
    again = load_text_matrix(store)
    assert np.array_equal(again[0], items) and np.array_equal(again[1], texts)


def test_resume_with_text_gives_the_uninterrupted_weights(table, tmp_path):
    ref = RunStore(str(tmp_path / "ref"))
    _with_text(ref.root)
    _train(table, ref.root, epochs=2)
    cut = RunStore(str(tmp_path / "cut"))
    _with_text(cut.root)
    _train(table, cut.root, epochs=1)
    os.remove(cut.model)  # as if killed after the first epoch's checkpoint
    resumed = _train(table, cut.root, epochs=2)
    assert resumed["resumed_from"] == cut.checkpoint(0)
    a, b = load_record(ref.model), load_record(cut.model)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


def test_resume_refuses_other_frozen_tables(table, tmp_path):
    store = RunStore(str(tmp_path / "run"))
    _with_text(store.root, seed=0)
    _train(table, store.root, epochs=1)
    os.remove(store.model)
    _with_text(store.root, seed=1)  # the embeddings changed under the killed run
    with pytest.raises(ValueError, match=r"epoch-000.pt was trained with frozen text tables .*--fresh"):
        _train(table, store.root, epochs=2)


def test_legacy_model_records_with_text_buffers_still_load(table, tmp_path):
    """model.pt files written before the change hold the tables as state-dict buffers."""
    from interest_lib.runs.store import atomic_save

    store = RunStore(str(tmp_path / "run"))
    items, texts = _with_text(store.root)
    _train(table, store.root, epochs=1)
    record = load_record(store.model)
    frozen = record.pop("frozen")
    record["state_dict"] = {**record["state_dict"], "encoder.item_text": frozen["item_text"],
                            "encoder.event_text": frozen["event_text"]}
    legacy = str(tmp_path / "legacy.pt")
    atomic_save(record, legacy)
    model, _ = load_trained(legacy)
    assert torch.equal(model.encoder.item_text, torch.from_numpy(items))
