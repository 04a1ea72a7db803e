"""Checkpoints and models load with torch's safe unpickler: a file whose unpickling would run code
is refused by every loader (training resume, report, inference, scoring) and runs nothing, while
normal save -> load -> resume still ends with the same weights as an uninterrupted run."""

from __future__ import annotations

import os
import pathlib

import deltalake
import pyarrow as pa
import pytest
import torch

from interest_lib.conf import TrainConf
from interest_lib.models.inference import load_trained
from interest_lib.scoring.predictors import model_predictor
from interest_lib.training.backend import TorchDistributorBackend
from interest_lib.training.job import _report
from interest_lib.training.loop import TrainJob, train_worker
from interest_lib.training.store import RunStore, UnsafeRecordError, atomic_save, load_record
from tests.ports import free_port
from tests.unit.test_models import SIZES, make_batch, small_params

pytestmark = pytest.mark.unit
MODEL = "migration_transformer"


class Payload:
    """Unpickling this creates ``marker``: what an attacker's code would do, harmlessly."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def _plant(path, marker, **record):
    """A record file carrying the payload (written with plain torch.save, as an attacker would)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save({**record, "extra": Payload(str(marker))}, path)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A small gold.training_sequences-shaped Delta table: 64 train rows, 32 validation rows."""
    gen = torch.Generator().manual_seed(3)
    batch = make_batch(96, gen)
    columns = {k: pa.array(v.tolist()) for k, v in batch.items()}
    columns["split"] = pa.array(["train"] * 64 + ["validation"] * 32)
    path = str(tmp_path_factory.mktemp("seq") / "training_sequences")
    deltalake.write_deltalake(path, pa.table(columns), partition_by=["split"])
    return path


@pytest.fixture(autouse=True)
def leave_no_process_group():
    """A run that raised never reached its shutdown: end its process group here."""
    yield
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _train(table: str, store: str, epochs: int, **train) -> dict:
    """train_worker in this process: real DDP over gloo with a world of one (``train``: more
    TrainConf settings)."""
    os.makedirs(store, exist_ok=True)  # the driver's part (it writes lineage.json there)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0", WORLD_SIZE="1",
                      LOCAL_RANK="0")
    job = TrainJob(model_name=MODEL, task="migration", params=small_params(MODEL), sizes=SIZES,
                   table_path=table, table_version=0, store_root=store,
                   backend=TorchDistributorBackend(1, True, False),
                   train=TrainConf(epochs=epochs, batch_size=16, patience=99, torch_threads=1, **train),
                   lineage={"run_id": os.path.basename(store), "table_version": 0})
    return train_worker(job)


def test_save_load_and_resume_give_the_uninterrupted_weights(table, tmp_path):
    _train(table, str(tmp_path / "ref"), epochs=2)
    store = RunStore(str(tmp_path / "cut"))
    _train(table, store.root, epochs=1)
    os.remove(store.model)  # as if killed after the first epoch's checkpoint
    resumed = _train(table, store.root, epochs=2)
    assert resumed["resumed_from"] == store.checkpoint(0)
    a, b = load_record(str(tmp_path / "ref" / "model.pt")), load_record(store.model)
    assert [h["epoch"] for h in b["history"]] == [1, 2] and a["history"][-1]["val_next_ce"] == pytest.approx(
        b["history"][-1]["val_next_ce"], rel=1e-6)
    for key, value in a["state_dict"].items():
        assert torch.allclose(value, b["state_dict"][key], atol=1e-6), key
    # The record's lineage and metadata are plain values, and the loaders accept it.
    model, record = load_trained(store.model)
    assert record["lineage"]["run_id"] == "cut" and record["params"]["d_model"] == 32
    assert model_predictor("migration", store.model).version == "cut"
    assert _report(MODEL, store, 0, 1.0).epochs_run == 2


def test_weight_average_and_cosine_schedule_resume_to_the_uninterrupted_weights(table, tmp_path, monkeypatch):
    """With the weights' moving average and the cosine schedule on, a run killed after its first
    epoch's checkpoint resumes the average and the schedule where they were: the saved model (the
    average) equals the uninterrupted run's, and the average is not the raw weights."""
    from interest_lib.training import loop

    settings = {"ema_decay": 0.9, "lr_schedule": "cosine"}
    _train(table, str(tmp_path / "ref"), epochs=3, **settings)
    store = RunStore(str(tmp_path / "killed"))

    def save_then_die(record, path):
        atomic_save(record, path)
        raise KeyboardInterrupt("killed after the first checkpoint")

    with monkeypatch.context() as m:
        m.setattr(loop, "atomic_save", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            _train(table, store.root, epochs=3, **settings)
    torch.distributed.destroy_process_group()
    first = load_record(store.checkpoint(0))
    assert first["state"]["average"]["updates"] == 4  # 64 rows / batch 16, one epoch
    assert any(not torch.allclose(v, first["state"]["average"]["shadow"][k])
               for k, v in first["model"].items() if v.is_floating_point())
    resumed = _train(table, store.root, epochs=3, **settings)
    assert resumed["resumed_from"] == store.checkpoint(0)
    a, b = load_record(str(tmp_path / "ref" / "model.pt")), load_record(store.model)
    assert [h["val_next_ce"] for h in a["history"]] == pytest.approx([h["val_next_ce"] for h in b["history"]], rel=1e-6)
    for key, value in a["state_dict"].items():
        assert torch.allclose(value, b["state_dict"][key], atol=1e-6), key


def test_cosine_schedule_falls_from_the_learning_rate_to_zero():
    from interest_lib.training.loop import scheduled_lr

    t = TrainConf(learning_rate=0.01, epochs=4, lr_schedule="cosine")
    lrs = [scheduled_lr(t, step, 10) for step in range(41)]
    assert lrs[0] == pytest.approx(0.01) and lrs[20] == pytest.approx(0.005) and lrs[40] == pytest.approx(0.0)
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    assert scheduled_lr(TrainConf(learning_rate=0.01), 25, 10) == 0.01


def test_epochs_log_holds_one_line_per_saved_epoch_whatever_the_kill(table, tmp_path, monkeypatch):
    """An epoch's line goes to epochs.jsonl after its checkpoint is saved, and a (re)started run
    rewrites the log from the checkpoint it resumes: a kill between the two writes leaves neither
    a duplicate nor a missing nor a broken line."""
    import json

    from interest_lib.training import loop

    store = RunStore(str(tmp_path / "run"))

    def epochs() -> list[int]:
        return [json.loads(line)["epoch"] for line in open(store.epochs_log).read().splitlines()]

    saved = []

    def save_then_look(record, path):
        atomic_save(record, path)
        if "checkpoints" in path:  # the log does not have this epoch yet when its checkpoint lands
            saved.append((record["state"]["epoch"] + 1, epochs()))

    monkeypatch.setattr(loop, "atomic_save", save_then_look)
    _train(table, store.root, epochs=1)
    assert saved == [(1, [])] and epochs() == [1]
    os.remove(store.model)
    # Killed in the old order: epoch 2's line appended (and a third one half written), no checkpoint.
    with open(store.epochs_log, "a") as fh:
        fh.write(json.dumps({"epoch": 2, "train_loss": 9.9}) + "\n" + '{"epoch": 3, "tra')
    _train(table, store.root, epochs=2)
    assert epochs() == [1, 2] and saved[-1] == (2, [1])
    history = [json.loads(line) for line in open(store.epochs_log)]
    assert history == load_record(store.model)["history"]
    # Killed after epoch 2's checkpoint, before its line: the resumed run restores the line.
    os.remove(store.model)
    with open(store.epochs_log, "w") as fh:
        fh.write(json.dumps(history[0]) + "\n")
    _train(table, store.root, epochs=2)
    assert [json.loads(line) for line in open(store.epochs_log)] == history


def test_a_malicious_file_is_refused_everywhere_and_runs_nothing(table, tmp_path):
    store = RunStore(str(tmp_path / "run"))
    _train(table, store.root, epochs=1)
    good = load_record(store.model)
    marker = tmp_path / "pwned"
    # A checkpoint that looks newest: training would resume from it.
    _plant(store.checkpoint(5), marker, **load_record(store.checkpoint(0)))
    with pytest.raises(UnsafeRecordError, match="epoch-005.pt: refused to load"):
        _train(table, store.root, epochs=8)
    # A replaced model.pt: the report, evaluation (load_trained) and scoring (model_predictor).
    _plant(store.model, marker, **good)
    with pytest.raises(UnsafeRecordError, match="model.pt: refused to load"):
        load_trained(store.model)
    with pytest.raises(UnsafeRecordError):
        model_predictor("migration", store.model)
    with pytest.raises(UnsafeRecordError):
        _report(MODEL, store, 0, 1.0)
    assert not marker.exists()
    # The payload is live: the unsafe loader this project used to call runs it.
    torch.load(store.model, weights_only=False)
    assert marker.exists()


def test_saving_anything_but_tensors_and_plain_values_is_refused(tmp_path):
    import numpy as np

    with pytest.raises(TypeError, match=r"model.pt\['history'\]\[0\]\['loss'\] is a float64"):
        atomic_save({"history": [{"loss": np.float64(1.0)}]}, str(tmp_path / "model.pt"))
    assert not list(tmp_path.iterdir())
    atomic_save({"w": torch.ones(2), "meta": {"a": [1, 2.5, "x", None, True, (3, 4)]}}, str(tmp_path / "ok.pt"))
    assert load_record(str(tmp_path / "ok.pt"))["meta"] == {"a": [1, 2.5, "x", None, True, (3, 4)]}
