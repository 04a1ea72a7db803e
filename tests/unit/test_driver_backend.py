"""``train.backend: driver``: one rank in the driver process trains the weights one TorchDistributor
rank trains (a gloo world of one, in this process), leaves the driver's torch threads and random
state as they were, and refuses more than one rank with a message naming the settings."""

from __future__ import annotations

import os

import pytest
import torch

from interest_lib.conf import ConfigError, TrainConf
from interest_lib.training.backend import BackendError, DriverBackend, TorchDistributorBackend, make_backend
from interest_lib.training.loop import TrainJob, train_worker
from interest_lib.training.store import load_record
from tests.ports import free_port
from tests.unit.test_models import SIZES, small_params
from tests.unit.test_safe_loading import leave_no_process_group, table  # noqa: F401 (fixtures)

pytestmark = pytest.mark.unit
MODEL = "migration_transformer"


def _job(table: str, store: str, backend) -> TrainJob:
    os.makedirs(store, exist_ok=True)
    return TrainJob(model_name=MODEL, task="migration", params=small_params(MODEL), sizes=SIZES,
                    table_path=table, table_version=0, store_root=store, backend=backend,
                    train=TrainConf(epochs=2, batch_size=16, patience=99, torch_threads=1),
                    lineage={"run_id": os.path.basename(store), "table_version": 0})


def test_the_driver_trains_the_weights_of_one_torch_distributor_rank(table, tmp_path):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0", WORLD_SIZE="1",
                      LOCAL_RANK="0")
    ddp = train_worker(_job(table, str(tmp_path / "ddp"), TorchDistributorBackend(1, True, False)))
    assert not torch.distributed.is_initialized()

    torch.set_num_threads(2)
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    backend = make_backend("driver", 1, True, False)
    driver = backend.launch(train_worker, _job(table, str(tmp_path / "driver"), backend))

    assert not torch.distributed.is_initialized()  # no process group was made
    assert torch.get_num_threads() == 2  # the loop's torch_threads=1 did not stay
    assert torch.equal(torch.rand(3), expected_draw)  # nor did its seeds
    assert len(driver["history"]) == len(ddp["history"]) == 2  # zip below must not hide a missing epoch
    assert driver["history"] == [{**h, "seconds": d["seconds"]} for h, d in zip(ddp["history"], driver["history"])]
    a = load_record(str(tmp_path / "ddp" / "model.pt"))["state_dict"]
    b = load_record(str(tmp_path / "driver" / "model.pt"))["state_dict"]
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


@pytest.mark.parametrize("processes, local_mode", [(2, True), (1, False)])
def test_more_than_one_rank_or_executors_are_refused_naming_the_settings(processes, local_mode):
    # a ConfigError: `interest train` exits 2 with "configuration error: <this message>"
    with pytest.raises(ConfigError, match="train.num_processes=1 and train.local_mode=true") as raised:
        DriverBackend(processes, local_mode, False)
    assert isinstance(raised.value, BackendError)
