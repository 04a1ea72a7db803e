"""A warm start in the training loop: the weights it continues are the bar (validated first, kept
unless an epoch beats them), and the weight average continues from them at full decay. Real DDP
over gloo with a world of one, in this process, on a small Delta table."""

from __future__ import annotations

import os

import pytest
import torch

from interest_lib.conf import TrainConf
from interest_lib.training.backend import TorchDistributorBackend
from interest_lib.training.loop import TrainJob, WeightAverage, train_worker, warmed_up_updates
from interest_lib.training.store import RunStore, atomic_save, load_record
from tests.ports import free_port
from tests.unit.test_models import SIZES, small_params
from tests.unit.test_safe_loading import leave_no_process_group, table  # noqa: F401 (fixtures)

pytestmark = pytest.mark.unit
MODEL = "migration_transformer"


def _train(table: str, store: str, warm_from: dict | None = None, **train) -> dict:
    """train_worker in this process; ``warm_from``: a state dict to warm-start from."""
    os.makedirs(store, exist_ok=True)
    if warm_from is not None:
        atomic_save({"from_run": "base", "state_dict": warm_from}, RunStore(store).warm_init)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0", WORLD_SIZE="1",
                      LOCAL_RANK="0")
    job = TrainJob(model_name=MODEL, task="migration", params=small_params(MODEL), sizes=SIZES,
                   table_path=table, table_version=0, store_root=store,
                   backend=TorchDistributorBackend(1, True, False),
                   train=TrainConf(batch_size=16, patience=99, torch_threads=1, **train),
                   lineage={"run_id": os.path.basename(store), "table_version": 0}, warm_start=warm_from is not None)
    return train_worker(job)


def _weights(store: str) -> dict:
    return load_record(os.path.join(store, "model.pt"))["state_dict"]


def test_a_warm_start_keeps_the_weights_it_continues_unless_an_epoch_beats_them(table, tmp_path):
    base = _train(table, str(tmp_path / "base"), epochs=3)
    base_weights = _weights(str(tmp_path / "base"))

    # A step size that wrecks the model: the epoch validates worse, so the base weights are kept.
    wrecked = _train(table, str(tmp_path / "wrecked"), warm_from=base_weights, epochs=1, learning_rate=5.0,
                     ema_decay=0.0)
    assert wrecked["history"][0]["val_next_ce"] > base["best"]
    assert wrecked["best"] == pytest.approx(base["best"], rel=1e-6)  # the base weights' own validation
    for key, value in base_weights.items():
        assert torch.equal(_weights(str(tmp_path / "wrecked"))[key], value), key

    # From an untrained model, the same one epoch at a normal step size beats its start and is kept.
    torch.manual_seed(11)
    from interest_lib.models import build_model

    untrained = build_model(MODEL, small_params(MODEL), SIZES, None).state_dict()
    fresh = _train(table, str(tmp_path / "fresh"), warm_from=untrained, epochs=1)
    kept = _weights(str(tmp_path / "fresh"))
    assert fresh["best"] == pytest.approx(fresh["history"][0]["val_next_ce"])
    assert any(not torch.equal(kept[k], v) for k, v in untrained.items() if v.is_floating_point())


def test_the_average_of_a_warm_start_continues_at_full_decay():
    for decay in (0.0, 0.5, 0.9, 0.999):
        n = warmed_up_updates(decay)  # after n updates the next, the (n+1)th, is the first at full decay
        assert (2 + n) / (11 + n) >= decay and (n == 0 or (1 + n) / (10 + n) < decay)
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    warm, cold = WeightAverage(model, 0.9, continuing=True), WeightAverage(model, 0.9)
    with torch.no_grad():
        model.weight.fill_(0.0)
    warm.update(model)
    cold.update(model)
    # Continuing: 0.9 of the trained weights stay; warming up, the first update keeps only 2/11 of them.
    assert torch.allclose(warm.shadow["weight"], torch.full((1, 2), 0.9))
    assert torch.allclose(cold.shadow["weight"], torch.full((1, 2), 2 / 11))
