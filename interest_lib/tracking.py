"""MLflow tracking of training runs, and loading a trained model back from an MLflow URI.

Each finished training run is logged once from the driver: its parameters (model
hyper-parameters and training settings), one metric row per epoch (``step`` = epoch), the Delta
table and version it was trained on, the code version, and the model as an MLflow pyfunc (with
its input/output signature) whose artifact is the run store's ``model.pt``. Scoring can then
name ``runs:/<id>/model`` or ``models:/<name>/<version>`` instead of the newest local run.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import mlflow.pyfunc
import numpy as np
import pandas as pd

from interest_lib.conf import Config
from interest_lib.logs import get_logger

log = get_logger(__name__)


class TrackingConfigError(ValueError):
    """MLflow tracking is on but has nowhere to go (no tracking.uri and a remote run store)."""


def tracking_uri(conf: Config) -> str:
    """The configured tracking URI; by default a file store under a local (or mounted) run store.

    Raises:
        TrackingConfigError: tracking is enabled, ``tracking.uri`` is empty and the run store is
            not local (MLflow's file store cannot live on an object store).
    """
    from interest_lib.runs import fs

    if conf.tracking.uri:
        return conf.tracking.uri
    if not fs.is_local(conf.train.store):
        raise TrackingConfigError(
            f"train.store {conf.train.store!r} is not a local or mounted path, so MLflow's file store "
            "cannot live under it: set tracking.uri (a tracking server, or databricks) or "
            "tracking.enabled=false")
    return "file://" + fs.join(conf.train.store, "mlruns")


def _use(conf: Config):
    import mlflow

    uri = tracking_uri(conf)
    if uri.startswith("file:"):
        # MLflow 3 keeps the file store in maintenance mode behind this switch; it is the
        # dependency-free local default (a server or Databricks is configured via tracking.uri).
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(uri)
    return mlflow


class InterestModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper: model input columns (lists per row) in, predictions out."""

    def load_context(self, context) -> None:
        """Load the ``model.pt`` artifact once."""
        from interest_lib.models.inference import load_trained

        self.model, self.record = load_trained(context.artifacts["model"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """One output row per input row (arrays for distributions)."""
        from interest_lib.models.inference import predict_arrays

        arrays = {c: np.stack(model_input[c].to_numpy()) for c in self.model.columns if c in model_input}
        out = predict_arrays(self.model, arrays)
        return pd.DataFrame({k: list(v) if v.ndim > 1 else v for k, v in out.items()})


def _example(model, rows: int = 2) -> pd.DataFrame:
    """A small input frame with the model's input columns: one event and one window each."""
    from interest_lib.models import INPUT_COLUMNS

    width = {"win_category": 8 * model.vocab.top_k, "win_share": 8 * model.vocab.top_k}
    frame = {}
    for c in (c for c in INPUT_COLUMNS if c in model.columns):
        value = np.zeros(width.get(c, 50), np.float32 if c == "win_share" else np.int64)
        value[-1] = 1  # the most recent event / window is real
        frame[c] = [value] * rows
    return pd.DataFrame(frame)


def log_training_run(conf: Config, store, model_name: str) -> Optional[str]:
    """Log a finished run store to MLflow; return the model URI (None when tracking is off)."""
    if not conf.tracking.enabled:
        return None
    import tempfile

    from interest_lib.runs import fs

    mlflow = _use(conf)
    mlflow.set_experiment(conf.tracking.experiment)
    lineage = store.read_lineage()
    with tempfile.TemporaryDirectory(prefix="interest-mlflow-") as scratch:
        uri = _log(mlflow, conf, store, model_name, lineage, fs.local_copy(store.model, scratch))
    log.info("train %s: logged to MLflow (%s), model %s", model_name, tracking_uri(conf), uri)
    return uri


def _log(mlflow, conf: Config, store, model_name: str, lineage: dict, model_file: str) -> str:
    """One MLflow run for a finished run store (``model_file``: a local copy of its model.pt)."""
    from mlflow.models import infer_signature

    from interest_lib.models.inference import load_trained
    from interest_lib.runs.store import write_json

    model, record = load_trained(model_file)
    wrapper = InterestModel()
    wrapper.model, wrapper.record = model, record
    example = _example(model)
    with mlflow.start_run(run_name=store.run_id) as run:
        mlflow.set_tags({"model": model_name, "task": lineage["task"], "store_run_id": store.run_id,
                         "table": lineage["table"], "code_version": lineage["code_version"]})
        params = {f"model.{k}": v for k, v in dataclasses.asdict(getattr(conf.models, model_name)).items()}
        params.update({f"train.{k}": v for k, v in dataclasses.asdict(conf.train).items()})
        params.update({"table_version": lineage["table_version"], "table_path": lineage["table_path"]})
        mlflow.log_params(params)
        for epoch in record["history"]:
            mlflow.log_metrics({k: v for k, v in epoch.items() if k != "epoch"}, step=epoch["epoch"])
        mlflow.log_metric("best_validation", record["best"])
        info = mlflow.pyfunc.log_model(
            name="model", python_model=InterestModel(), artifacts={"model": model_file},
            signature=infer_signature(example, wrapper.predict(None, example)))
    write_json(store.tracking, {"run_id": run.info.run_id, "model_uri": info.model_uri,
                                "tracking_uri": tracking_uri(conf)})
    return info.model_uri


def download_model(conf: Config, uri: str) -> str:
    """Local path of the ``model.pt`` behind an MLflow model URI."""
    mlflow = _use(conf)
    root = mlflow.artifacts.download_artifacts(artifact_uri=uri)
    for folder, _dirs, files in os.walk(root):
        if "model.pt" in files:
            return os.path.join(folder, "model.pt")
    raise FileNotFoundError(f"{uri}: no model.pt among the model's artifacts ({root})")
