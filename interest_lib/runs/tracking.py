"""Where training runs are tracked in MLflow, and a trained model back from an MLflow URI.

The run store's MLflow hook, without model code (scoring uses it to load ``runs:/...`` and
``models:/...`` URIs; :mod:`interest_lib.tracking` logs runs from the training job).
"""

from __future__ import annotations

import os

from interest_lib.conf import Config

__all__ = ["TrackingConfigError", "tracking_uri", "use", "download_model"]


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


def use(conf: Config):
    """The ``mlflow`` module, pointed at :func:`tracking_uri`."""
    import mlflow

    uri = tracking_uri(conf)
    if uri.startswith("file:"):
        # MLflow 3 keeps the file store in maintenance mode behind this switch; it is the
        # dependency-free local default (a server or Databricks is configured via tracking.uri).
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(uri)
    return mlflow


def download_model(conf: Config, uri: str) -> str:
    """Local path of the ``model.pt`` behind an MLflow model URI."""
    mlflow = use(conf)
    root = mlflow.artifacts.download_artifacts(artifact_uri=uri)
    for folder, _dirs, files in os.walk(root):
        if "model.pt" in files:
            return os.path.join(folder, "model.pt")
    raise FileNotFoundError(f"{uri}: no model.pt among the model's artifacts ({root})")
