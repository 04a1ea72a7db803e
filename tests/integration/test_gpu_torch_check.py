"""bench/gpu_torch_check.py on the shared pipeline's runs, without a GPU: ``pack`` copies what a
training rank reads, a rank started by torchrun from the packed folder alone trains with the
project's loop (gloo on the CPU here; NCCL on a GPU machine), and ``check`` refuses to run
without a GPU (exit 3)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stores import REPO

pytestmark = [pytest.mark.integration]
SCRIPT = str(Path(REPO) / "bench" / "gpu_torch_check.py")


def test_packed_runs_train_in_a_torchrun_rank_and_check_needs_a_gpu(pipeline, tmp_path):
    _settings, _tables, conf = pipeline
    packed = tmp_path / "packed"
    subprocess.run([sys.executable, SCRIPT, "pack", "--warehouse", conf.storage.warehouse,
                    "--store", conf.train.store, "--out", str(packed)], check=True)
    assert {p.name for p in packed.iterdir()} == {"sequences", "migration", "evolution"}
    assert (packed / "sequences" / "_delta_log").is_dir()
    store = tmp_path / "evolution-cpu"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", SCRIPT,
                    "worker", "--packed", str(packed), "--task", "evolution", "--device", "cpu", "--ranks", "1",
                    "--epochs", "1", "--store-root", str(store)], check=True, env=env, capture_output=True)
    epochs = [json.loads(x) for x in (store / "epochs.jsonl").read_text().splitlines()]
    # whole batches of the pipeline's train split, at the run's own batch size (train.batch_size=64)
    assert len(epochs) == 1 and epochs[0]["samples"] > 0 and epochs[0]["samples"] % conf.train.batch_size == 0
    assert 0 < epochs[0]["val_js"] < 1
    assert (store / "model.pt").is_file()
    no_gpu = subprocess.run([sys.executable, SCRIPT, "check", "--packed", str(packed)], env=dict(env, CUDA_VISIBLE_DEVICES=""),
                            capture_output=True, text=True)
    assert no_gpu.returncode == 3 and "torch sees no CUDA GPU" in no_gpu.stderr
