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

from interest_lib.cli import main
from interest_lib.storage.catalog import GOLD_MODEL_METRICS, GOLD_TRAINING_SEQUENCES
from interest_lib.training.store import RunStore, latest_run, load_record
from tests.jvm import write_conf_file

pytestmark = pytest.mark.integration
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _metric(rows, model, slice_, metric):
    """The evaluation's value (series test; scoring's drift rows share model, slice and metric)."""
    return next(r.value for r in rows if (r.model, r.slice, r.metric, r.series) == (model, slice_, metric, "test"))


def test_trained_models_beat_the_markov_baseline(pipeline):
    _settings, tables, conf = pipeline
    rows = tables.read(GOLD_MODEL_METRICS).collect()
    model = conf.train.migration_model
    assert _metric(rows, model, "all", "ndcg@10") > _metric(rows, "markov", "all", "ndcg@10") + 0.03
    assert _metric(rows, model, "all", "hr@10") > _metric(rows, "popularity", "all", "hr@10")
    evo = conf.train.evolution_model
    assert _metric(rows, evo, "all", "js") < _metric(rows, "markov", "all", "js")
    assert 0.0 < _metric(rows, evo, "all", "stage_acc") <= 1.0
    # The stage head is compared with the train split's majority stage, a baseline row of its own.
    assert 0.0 < _metric(rows, "majority_stage", "all", "stage_acc") <= 1.0


def test_lineage_pins_the_training_table_version(pipeline):
    _settings, tables, conf = pipeline
    for task in ("migration", "evolution"):
        run = latest_run(conf.train.store, task)
        assert run is not None
        lineage = json.load(open(run.lineage))
        assert lineage["table"] == GOLD_TRAINING_SEQUENCES
        assert lineage["table_version"] == tables.version(GOLD_TRAINING_SEQUENCES)
        assert lineage["code_version"] and lineage["conf"]["train"]["seed"] == conf.train.seed
        record = load_record(run.model)
        assert record["lineage"]["run_id"] == run.run_id
        assert 1 <= len(record["history"]) <= conf.train.epochs
        assert len(open(run.epochs_log).read().splitlines()) == len(record["history"])


def _train_cmd(settings, store):
    # The training subprocesses' driver JVMs only host TorchDistributor (the ranks are Python).
    conf_file = write_conf_file(store.parent / "test-spark.yml")
    return [sys.executable, "-m", "interest_lib.cli", "train", "--model", "migration",
            *[x for s in settings for x in ("--set", s)], "--conf-file", str(conf_file),
            "--set", f"train.store={store}"]


def test_killed_run_resumes_to_the_same_weights(pipeline, tmp_path):
    settings, _tables, conf = pipeline
    # torchrun's log folder under tmp_path: the killed run cannot remove the one it would make
    # in /tmp (interest_lib.training.backend.torchrun_log_dir keeps a folder set here).
    env = dict(os.environ, PYTHONPATH=REPO, PET_LOG_DIR=str(tmp_path / "torchrun-logs"))
    # The pipeline's settings, another store: SIGKILL (whole process group) right after the
    # first checkpoint, then the same command again.
    store = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(settings, store), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list(store.glob("*/checkpoints/epoch-000.pt")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dir = next(store.glob("*/checkpoints")).parent
    assert not (run_dir / "model.pt").exists(), "the run finished before it could be killed"
    resumed = subprocess.run(_train_cmd(settings, store), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming after epoch" in resumed.stdout + resumed.stderr
    # The uninterrupted reference: the pipeline's own run of the same id (same table version,
    # settings and seed; the store is not part of the id), trained here only if a test changed
    # the table since the pipeline ran.
    reference = os.path.join(conf.train.store, run_dir.name, "model.pt")
    if not os.path.exists(reference):
        assert main(["train", "--model", "migration", *[x for s in settings for x in ("--set", s)]]) == 0
    a = load_record(reference)
    b = load_record(RunStore(str(run_dir)).model)
    assert [h["epoch"] for h in b["history"]] == [h["epoch"] for h in a["history"]] == list(range(1, conf.train.epochs + 1))
    assert a["history"][-1]["val_next_ce"] == pytest.approx(b["history"][-1]["val_next_ce"], rel=1e-6)
    for key, value in a["state_dict"].items():
        assert torch.allclose(value, b["state_dict"][key], atol=1e-6), key


def test_runs_are_tracked_in_mlflow_and_load_back_by_uri(pipeline):
    import mlflow.pyfunc

    from interest_lib.evaluate.job import load_split
    from interest_lib.models.inference import load_trained, predict_arrays
    from interest_lib.tracking import download_model, tracking_uri

    _settings, tables, conf = pipeline
    run = latest_run(conf.train.store, "migration")
    tracked = json.load(open(os.path.join(run.root, "mlflow.json")))
    assert tracked["tracking_uri"] == tracking_uri(conf)
    mlflow.set_tracking_uri(tracked["tracking_uri"])
    logged = mlflow.get_run(tracked["run_id"])
    assert int(logged.data.params["table_version"]) == tables.version(GOLD_TRAINING_SEQUENCES)
    history = mlflow.tracking.MlflowClient().get_metric_history(tracked["run_id"], "val_next_ce")
    assert [m.step for m in history] == list(range(1, len(history) + 1)) and history
    # The logged pyfunc predicts what the run store's model predicts, from the MLflow URI alone.
    test = load_split(tables.path(GOLD_TRAINING_SEQUENCES), tables.version(GOLD_TRAINING_SEQUENCES), "test",
                      ["ev_category", "ev_item", "ev_type", "ev_interval", "ev_text", "win_category", "win_share"])
    frame = __import__("pandas").DataFrame({k: list(v[:8]) for k, v in test.items()})
    served = mlflow.pyfunc.load_model(tracked["model_uri"]).predict(frame)
    model, _record = load_trained(download_model(conf, tracked["model_uri"]))
    direct = predict_arrays(model, {k: v[:8] for k, v in test.items()})
    assert torch.allclose(torch.tensor(list(served["next_probs"])), torch.tensor(direct["next_probs"]), atol=1e-6)
    # Its requirements name what the pyfunc needs, pinned to the versions installed here.
    import importlib.metadata as metadata

    requirements = mlflow.pyfunc.get_model_dependencies(tracked["model_uri"])
    assert set(open(requirements).read().split()) == {
        f"mlflow=={mlflow.__version__}", f"cloudpickle=={metadata.version('cloudpickle')}",
        f"interest-evolution=={metadata.version('interest-evolution')}"}
