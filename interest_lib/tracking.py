"""MLflow tracking of training runs (the training side of the run store's MLflow hook).

Each finished training run is logged once from the driver: its parameters (model
hyper-parameters and training settings), one metric row per epoch (``step`` = epoch), the Delta
table and version it was trained on, the code version, and the model as an MLflow pyfunc (with
its input/output signature) whose artifact is the run store's ``model.pt``. Scoring can then
name ``runs:/<id>/model`` or ``models:/<name>/<version>`` instead of the newest local run.

Where runs are tracked and how a model comes back from a URI (no model code) live in
:mod:`interest_lib.runs.tracking`, which scoring uses; this module wraps the models as MLflow
pyfuncs, so only training imports it. (The pyfunc class keeps this module path: MLflow models
logged so far name ``interest_lib.tracking.InterestModel``.)
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import mlflow.pyfunc
import numpy as np
import pandas as pd

from interest_lib.conf import Config
from interest_lib.logs import get_logger
from interest_lib.runs.tracking import (  # noqa: F401  (tracking_uri, download_model: re-exported)
    TrackingConfigError, download_model, tracking_uri, use as _use,
)

log = get_logger(__name__)


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


def pyfunc_requirements() -> list[str]:
    """The logged model's pip requirements (MLflow adds its own pin): what MLflow's inference
    finds for :class:`InterestModel` (cloudpickle and this project, where it is installed as a
    distribution rather than shipped as a zip), named here because inferring them loads the model
    in a subprocess, ~2.5 s of CPU per training run."""
    import importlib.metadata as metadata

    import cloudpickle

    reqs = [f"cloudpickle=={cloudpickle.__version__}"]
    try:
        reqs.append(f"interest-evolution=={metadata.version('interest-evolution')}")
    except metadata.PackageNotFoundError:
        pass
    return reqs


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
            signature=infer_signature(example, wrapper.predict(None, example)),
            pip_requirements=pyfunc_requirements())
    write_json(store.tracking, {"run_id": run.info.run_id, "model_uri": info.model_uri,
                                "tracking_uri": tracking_uri(conf)})
    return info.model_uri
