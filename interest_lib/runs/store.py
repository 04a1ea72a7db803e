"""The run store: every location a training run writes, run ids, and the latest run per task.

    <train.store>/<run_id>/
        lineage.json          which table (location) and version, conf, code version, input sizes
        inputs.npz            frozen text-embedding matrices aligned with ref.vocab (optional),
                              built from the ref tables at the versions lineage.json records;
                              removed once the run is finished (model.pt carries them)
        vocab.json            id -> key per vocabulary kind (category, item, text) the run was trained on
        categories.json       category key -> its text (name and path) for transfers to another catalogue
        warm_start.pt         a warm-started run's initial weights (``interest train --warm-start``)
        checkpoints/epoch-NNN.pt   model + optimizer + early-stopping state after the newest epoch
                              (older ones are deleted; all once the run is finished). The frozen
                              tables are not in it: it references inputs.npz by SHA-256
        epochs.jsonl          one line of metrics per finished epoch (rank 0)
        model.pt              the final (best-validation) weights with their lineage, and the
                              frozen text tables once, outside the state dict (self-contained:
                              scoring ships it to executors, MLflow logs it)
        mlflow.json           the MLflow run and model URI, when tracking is on
    <train.store>/latest-<task>.json   pointer to the newest published run of each task

``<train.store>`` is any location :mod:`interest_lib.runs.fs` resolves (a local or mounted path,
``s3://``, ``dbfs:/``...): on a cluster it must be shared by the driver and the executors, and by
the training, evaluation and scoring jobs. Training writes a run, then publishes it with
:func:`write_latest` (an explicit step of ``interest train``); evaluate and score follow the
pointer with :func:`latest_run`, which verifies it before anything is unpickled.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
from dataclasses import dataclass
from typing import Optional

from interest_lib.runs import fs

__all__ = ["RunStore", "UnsafeRecordError", "RunPointerError", "load_record", "atomic_save",
           "write_json", "read_json", "file_sha256", "latest_pointer", "write_latest", "latest_run",
           "training_run_id", "table_identity"]


@dataclass(frozen=True)
class RunStore:
    """Locations of one run (``root`` = ``<train.store>/<run_id>``); creating it writes nothing."""

    root: str

    def __post_init__(self):
        object.__setattr__(self, "root", fs.canonical(self.root))

    @property
    def run_id(self) -> str:
        return fs.basename(self.root)

    @property
    def lineage(self) -> str:
        return fs.join(self.root, "lineage.json")

    @property
    def inputs(self) -> str:
        return fs.join(self.root, "inputs.npz")

    @property
    def vocab(self) -> str:
        """The run's id -> key lists per vocabulary kind (``vocab.json``; warm starts map by key)."""
        return fs.join(self.root, "vocab.json")

    @property
    def categories(self) -> str:
        """The run's category key -> text (name and path, ``categories.json``; a transfer to
        another catalogue aligns categories by these texts)."""
        return fs.join(self.root, "categories.json")

    @property
    def warm_init(self) -> str:
        """A warm-started run's initial weights (the base run's, moved to the new ids)."""
        return fs.join(self.root, "warm_start.pt")

    @property
    def checkpoints(self) -> str:
        return fs.join(self.root, "checkpoints")

    @property
    def epochs_log(self) -> str:
        return fs.join(self.root, "epochs.jsonl")

    @property
    def model(self) -> str:
        return fs.join(self.root, "model.pt")

    @property
    def tracking(self) -> str:
        """Where the MLflow run and model URI of this run are recorded."""
        return fs.join(self.root, "mlflow.json")

    def checkpoint(self, epoch: int) -> str:
        """Checkpoint written after ``epoch`` (0-based)."""
        return fs.join(self.checkpoints, f"epoch-{epoch:03d}.pt")

    def latest_checkpoint(self) -> Optional[str]:
        """The newest complete checkpoint, or None (partial files are never named *.pt)."""
        found = sorted(fs.glob(fs.join(self.checkpoints, "epoch-*.pt")),
                       key=lambda p: int(re.findall(r"epoch-(\d+)\.pt$", p)[0]))
        return found[-1] if found else None

    def prune_checkpoints(self, keep: str) -> None:
        """Delete every checkpoint but ``keep`` (resume only ever reads the newest)."""
        for path in fs.glob(fs.join(self.checkpoints, "epoch-*.pt")):
            if fs.canonical(path) != fs.canonical(keep):
                fs.remove(path)

    def prune_finished(self) -> None:
        """Once ``model.pt`` is written, drop what only resume needed: the checkpoints and
        inputs.npz (the model record carries the frozen tables). A no-op before that."""
        if not self.finished():
            return
        fs.remove_tree(self.checkpoints)
        fs.remove(self.inputs)

    def size_bytes(self) -> int:
        """Bytes the run keeps in the store (all its files)."""
        return fs.tree_size(self.root)

    def finished(self) -> bool:
        """True once the final model is written."""
        return fs.exists(self.model)

    def has_inputs(self) -> bool:
        """True when the frozen text matrices were saved."""
        return fs.exists(self.inputs)

    def read_lineage(self) -> dict:
        """The run's ``lineage.json``."""
        return read_json(self.lineage)

    def append_epoch(self, record: dict) -> None:
        """Add one epoch's metrics line to ``epochs.jsonl``."""
        with fs.open_file(self.epochs_log, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def create(self) -> None:
        """Create the run's folder (a no-op on object stores)."""
        fs.makedirs(self.root)

    def remove(self) -> None:
        """Delete the run and everything in it (``--fresh``)."""
        fs.remove_tree(self.root)


class UnsafeRecordError(pickle.UnpicklingError):
    """A checkpoint or model file holds something other than tensors and plain values."""


#: What a checkpoint or model record may hold besides tensors: the types torch's safe
#: (weights_only) unpickler rebuilds without running any code of the file's choosing. Exact
#: types: a numpy float64 is a float to isinstance but pickles as numpy, which the loader refuses.
_PLAIN = (str, int, float, bool, type(None), bytes)


def _check_plain(obj, where: str) -> None:
    import collections

    import torch

    kind = type(obj)
    if kind in (dict, collections.OrderedDict):
        for key, value in obj.items():
            _check_plain(key, where)
            _check_plain(value, f"{where}[{key!r}]")
    elif kind in (list, tuple, torch.Size):
        for i, value in enumerate(obj):
            _check_plain(value, f"{where}[{i}]")
    elif kind not in _PLAIN and not isinstance(obj, (torch.Tensor, torch.dtype, torch.device)):
        raise TypeError(f"{where} is a {kind.__name__}: a saved record holds only tensors, dicts, "
                        "lists, tuples, str, int, float, bool and None (loaded with weights_only=True)")


def load_record(source, map_location="cpu"):
    """A record written by :func:`atomic_save` (a run-store location or a file-like object),
    loaded with torch's safe unpickler (``weights_only=True``): tensors and plain values only.

    Raises:
        UnsafeRecordError: the file holds anything else, e.g. an object whose unpickling would
            run code; nothing of it is executed.
    """
    import os

    import torch

    name = source if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "model bytes")
    if isinstance(source, (str, os.PathLike)):
        source = str(source)
        source = fs.canonical(source) if fs.is_local(source) else io.BytesIO(fs.read_bytes(source))
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeRecordError(f"{name}: refused to load, it holds more than tensors and plain values "
                                f"(a tampered or foreign file?): {str(exc).splitlines()[0]}") from exc


def atomic_save(obj, location: str) -> None:
    """torch.save so that a killed process never leaves half a file (see :func:`fs.write_with`).

    ``obj`` must hold only what :func:`load_record` accepts (checked first: a TypeError names the key).
    """
    import torch

    _check_plain(obj, fs.basename(location))
    fs.write_with(location, lambda fh: torch.save(obj, fh))


def write_json(location: str, data: dict) -> None:
    """Write JSON atomically."""
    fs.write_bytes(location, json.dumps(data, indent=2, default=str).encode())


def read_json(location: str) -> dict:
    """The JSON document at ``location``."""
    return json.loads(fs.read_bytes(location))


def file_sha256(location: str) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with fs.open_file(location, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def table_identity(table_location: str) -> str:
    """The canonical location of an input table: the same table however it is spelled
    (relative path, ``file://``, ``s3a://``), different tables in different warehouses."""
    return fs.canonical(table_location)


def training_run_id(model_name: str, table_location: str, table_version: int, settings: dict) -> str:
    """``<model>-v<table version>-<hash>`` of the input table's identity and version and the
    run's ``settings`` (hyper-parameters, training settings, model code): the same command on the
    same table version resumes the same run; another warehouse, version or setting is a new run."""
    key = {"table": table_identity(table_location), "version": table_version, "settings": settings}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{model_name}-v{table_version}-{digest}"


def latest_pointer(store_root: str, task: str) -> str:
    """Location of the pointer file to the newest published run of ``task``."""
    return fs.join(store_root, f"latest-{task}.json")


class RunPointerError(RuntimeError):
    """A ``latest-<task>.json`` pointer does not match the run store; the message names it."""


def write_latest(store_root: str, task: str, store: RunStore, model_name: str, table_version: int) -> None:
    """Publish the finished run ``store`` as the newest run of ``task``: point
    ``latest-<task>.json`` at it, recording its model file's SHA-256 so that :func:`latest_run`
    can verify what it hands to the loaders."""
    write_json(latest_pointer(store_root, task), {
        "run_id": store.run_id, "task": task, "model": model_name, "table_version": table_version,
        "model_sha256": file_sha256(store.model),
    })


def latest_run(store_root: str, task: str) -> Optional[RunStore]:
    """The newest published run of ``task`` (migration | evolution), verified; None when no run
    of the task was ever published.

    The pointer must name a run folder of this store (a plain name) whose final model exists,
    whose ``lineage.json`` agrees with it (run id, task, model, table version), and whose model
    file has the SHA-256 recorded when the pointer was written.

    Raises:
        RunPointerError: any of those checks fails; the message names the pointer and the check.
            Nothing of the model has been unpickled.
    """
    pointer = latest_pointer(store_root, task)
    if not fs.exists(pointer):
        return None
    rerun = f"; rerun `interest train --model {task}` to rewrite it"

    def refuse(why: str) -> RunPointerError:
        return RunPointerError(f"{pointer}: {why}{rerun}")

    try:
        record = read_json(pointer)
    except (OSError, ValueError) as exc:
        raise refuse(f"unreadable run pointer ({exc})") from exc
    run_id = record.get("run_id") if isinstance(record, dict) else None
    if not isinstance(run_id, str) or not run_id or run_id in (".", "..") or "/" in run_id or "\\" in run_id:
        raise refuse(f"run_id {run_id!r} is not the name of a run folder")
    store = RunStore(fs.join(store_root, run_id))
    if not store.finished():
        raise refuse(f"names run {run_id}, which has no final model in the run store ({store.model})")
    try:
        lineage = store.read_lineage()
    except (OSError, ValueError) as exc:
        raise refuse(f"run {run_id} has no readable lineage ({store.lineage}: {exc})") from exc
    expected = {"run_id": run_id, "task": task, "model": record.get("model"),
                "table_version": record.get("table_version")}
    wrong = {k: (v, lineage.get(k)) for k, v in expected.items() if lineage.get(k) != v}
    if wrong:
        raise refuse("pointer and run lineage disagree: " + ", ".join(
            f"{k} {mine!r} (pointer) vs {theirs!r} (lineage.json)" for k, (mine, theirs) in sorted(wrong.items())))
    want = record.get("model_sha256")
    if not want:
        raise refuse("records no model_sha256 (written by an older version)")
    got = file_sha256(store.model)
    if got != want:
        raise refuse(f"the model file {store.model} has SHA-256 {got[:16]}..., not the {want[:16]}... "
                     "recorded when the run finished (replaced or altered since)")
    return store
