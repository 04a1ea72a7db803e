"""Training and evaluation on the small pipeline run: real TorchDistributor DDP (2 gloo ranks),
fed from the Delta snapshot; the models must beat the Markov baseline; a killed run resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from interest_lib.storage.catalog import GOLD_MODEL_METRICS, GOLD_TRAINING_SEQUENCES
from interest_lib.training.store import RunStore, latest_run

pytestmark = pytest.mark.integration
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _metric(rows, model, slice_, metric):
    return next(r.value for r in rows if (r.model, r.slice, r.metric) == (model, slice_, metric))


def test_trained_models_beat_the_markov_baseline(pipeline):
    _settings, tables, conf = pipeline
    rows = tables.read(GOLD_MODEL_METRICS).collect()
    model = conf.train.migration_model
    assert _metric(rows, model, "all", "ndcg@10") > _metric(rows, "markov", "all", "ndcg@10") + 0.03
    assert _metric(rows, model, "all", "hr@10") > _metric(rows, "popularity", "all", "hr@10")
    evo = conf.train.evolution_model
    assert _metric(rows, evo, "all", "js") < _metric(rows, "markov", "all", "js")
    assert 0.0 < _metric(rows, evo, "all", "stage_acc") <= 1.0


def test_lineage_pins_the_training_table_version(pipeline):
    _settings, tables, conf = pipeline
    for task in ("migration", "evolution"):
        run = latest_run(conf.train.store, task)
        assert run is not None
        lineage = json.load(open(run.lineage))
        assert lineage["table"] == GOLD_TRAINING_SEQUENCES
        assert lineage["table_version"] == tables.version(GOLD_TRAINING_SEQUENCES)
        assert lineage["code_version"] and lineage["conf"]["train"]["seed"] == conf.train.seed
        record = torch.load(run.model, weights_only=False)
        assert record["lineage"]["run_id"] == run.run_id
        assert 1 <= len(record["history"]) <= conf.train.epochs
        assert len(open(run.epochs_log).read().splitlines()) == len(record["history"])


def _train_cmd(settings, store, epochs):
    return [sys.executable, "-m", "interest_lib.cli", "train", "--model", "migration",
            *[x for s in settings for x in ("--set", s)],
            "--set", f"train.store={store}", "--set", f"train.epochs={epochs}", "--set", "train.patience=99"]


def test_killed_run_resumes_to_the_same_weights(pipeline, tmp_path):
    settings, _tables, _conf = pipeline
    env = dict(os.environ, PYTHONPATH=REPO)
    epochs = 4
    # Uninterrupted reference run.
    ref = subprocess.run(_train_cmd(settings, tmp_path / "ref", epochs), env=env, capture_output=True,
                         text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    # The same run, killed (SIGKILL, whole process group) right after its first checkpoint.
    store = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(settings, store, epochs), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list(store.glob("*/checkpoints/epoch-000.pt")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dir = next(store.glob("*/checkpoints")).parent
    assert not (run_dir / "model.pt").exists(), "the run finished before it could be killed"
    resumed = subprocess.run(_train_cmd(settings, store, epochs), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming after epoch" in resumed.stdout + resumed.stderr
    a = torch.load(next((tmp_path / "ref").glob("*/model.pt")), weights_only=False)
    b = torch.load(RunStore(str(run_dir)).model, weights_only=False)
    assert [h["epoch"] for h in b["history"]] == list(range(1, epochs + 1))
    assert a["history"][-1]["val_next_ce"] == pytest.approx(b["history"][-1]["val_next_ce"], rel=1e-6)
    for key, value in a["state_dict"].items():
        assert torch.allclose(value, b["state_dict"][key], atol=1e-6), key
