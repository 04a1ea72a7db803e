"""What scores a user: a trained model (from its run store) or a fitted baseline, one interface.

A :class:`Predictor` is pickled into a Spark broadcast once per scoring run. Inside a Python
worker the model is rebuilt from the broadcast bytes on first use and cached for the life of the
worker process (keyed by run id and device), so it is loaded once per worker, never per batch.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

_LOADED: dict = {}  # (run id, device) -> model, per Python worker process


@dataclass
class Predictor:
    """A migration or evolution predictor: ``model_bytes`` of a run's model.pt, or a fitted baseline."""

    task: str
    name: str
    version: str
    model_bytes: Optional[bytes] = None
    baseline: Any = None
    table_version: int = -1
    top_k: int = 5

    def predict(self, arrays: dict, batch_size: int = 1024, device: str = "auto") -> dict:
        """Migration: next_probs [N, C+1], p_switch [N]. Evolution: forecast [N, C+1], stage [N]
        (stage -1 when a baseline has no stage)."""
        if self.baseline is not None:
            return self._predict_baseline(arrays)
        from interest_lib.models.inference import load_trained, pick_device, predict_arrays

        device = pick_device(device)
        key = (self.version, device)
        if key not in _LOADED:
            _LOADED[key] = load_trained(io.BytesIO(self.model_bytes), device)[0]
        return predict_arrays(_LOADED[key], arrays, batch_size, device)

    def _predict_baseline(self, arrays: dict) -> dict:
        from interest_lib.metrics import sparse_to_dense

        if self.task == "migration":
            probs = self.baseline.forecast(arrays)
            k = self.top_k
            current = sparse_to_dense(arrays["win_category"][:, -k:], arrays["win_share"][:, -k:], probs.shape[1] - 1)
            return {"next_probs": probs, "p_switch": 1.0 - (probs * (current > 0)).sum(1)}
        forecast = self.baseline.forecast(arrays)
        return {"forecast": forecast, "stage": np.full(len(forecast), -1)}


def model_predictor(task: str, model_path: str) -> Predictor:
    """The predictor of a trained model's ``model.pt`` (from a run store or an MLflow model)."""
    from interest_lib.runs import fs
    from interest_lib.runs.store import load_record

    data = fs.read_bytes(model_path)
    record = load_record(io.BytesIO(data))
    if record["task"] != task:
        raise ValueError(f"{model_path} is a {record['task']} model, not a {task} model")
    lineage = record["lineage"]
    return Predictor(task=task, name=record["model_name"], version=lineage["run_id"], model_bytes=data,
                     table_version=int(lineage["table_version"]))


def baseline_predictor(task: str, name: str, train: dict, num_categories: int, table_version: int,
                       top_k: int) -> Predictor:
    """A baseline fitted on the train split (``train``: numpy columns)."""
    from interest_lib.models.baselines import BASELINES

    return Predictor(task=task, name=name, version=f"baseline@{table_version}",
                     baseline=BASELINES[name]().fit(train, num_categories), table_version=table_version,
                     top_k=top_k)
