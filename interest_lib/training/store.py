"""The run store: every path a training run writes, in one place.

    <train.store>/<run_id>/
        lineage.json          which table and version, conf, code version, input sizes
        inputs.npz            frozen text-embedding matrices aligned with ref.vocab (optional)
        checkpoints/epoch-NNN.pt   model + optimizer + early-stopping state after each epoch
        epochs.jsonl          one line of metrics per finished epoch (rank 0)
        model.pt              the final (best-validation) weights with their lineage
    <train.store>/latest-<task>.json   pointer to the newest finished run of each task
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import pickle
import re
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class RunStore:
    """Paths of one run (``root`` = ``<train.store>/<run_id>``); creating it writes nothing."""

    root: str

    @property
    def run_id(self) -> str:
        return os.path.basename(self.root.rstrip("/"))

    @property
    def lineage(self) -> str:
        return os.path.join(self.root, "lineage.json")

    @property
    def inputs(self) -> str:
        return os.path.join(self.root, "inputs.npz")

    @property
    def checkpoints(self) -> str:
        return os.path.join(self.root, "checkpoints")

    @property
    def epochs_log(self) -> str:
        return os.path.join(self.root, "epochs.jsonl")

    @property
    def model(self) -> str:
        return os.path.join(self.root, "model.pt")

    def checkpoint(self, epoch: int) -> str:
        """Checkpoint written after ``epoch`` (0-based)."""
        return os.path.join(self.checkpoints, f"epoch-{epoch:03d}.pt")

    def latest_checkpoint(self) -> Optional[str]:
        """The newest complete checkpoint, or None (partial files are never named *.pt)."""
        found = sorted(glob.glob(os.path.join(self.checkpoints, "epoch-*.pt")),
                       key=lambda p: int(re.findall(r"epoch-(\d+)\.pt$", p)[0]))
        return found[-1] if found else None

    def finished(self) -> bool:
        """True once the final model is written."""
        return os.path.exists(self.model)


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
    """A record written by :func:`atomic_save` (path or file-like), loaded with torch's safe
    unpickler (``weights_only=True``): tensors and plain values only.

    Raises:
        UnsafeRecordError: the file holds anything else, e.g. an object whose unpickling would
            run code; nothing of it is executed.
    """
    import torch

    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        name = source if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "model bytes")
        raise UnsafeRecordError(f"{name}: refused to load, it holds more than tensors and plain values "
                                f"(a tampered or foreign file?): {str(exc).splitlines()[0]}") from exc


def atomic_save(obj, path: str) -> None:
    """torch.save to a temporary name, then rename: a killed process never leaves half a file.

    ``obj`` must hold only what :func:`load_record` accepts (checked first: a TypeError names the key).
    """
    import torch

    _check_plain(obj, os.path.basename(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_json(path: str, data: dict) -> None:
    """Write JSON atomically (temporary file + rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, default=str)
    os.replace(tmp, path)


def latest_pointer(store_root: str, task: str) -> str:
    """Path of the pointer file to the newest finished run of ``task``."""
    return os.path.join(store_root, f"latest-{task}.json")


class RunPointerError(RuntimeError):
    """A ``latest-<task>.json`` pointer does not match the run store; the message names it."""


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_latest(store_root: str, task: str, store: RunStore, model_name: str, table_version: int) -> None:
    """Point ``latest-<task>.json`` at the finished run ``store``, recording its model file's
    SHA-256 so that :func:`latest_run` can verify what it hands to the loaders."""
    write_json(latest_pointer(store_root, task), {
        "run_id": store.run_id, "task": task, "model": model_name, "table_version": table_version,
        "model_sha256": file_sha256(store.model),
    })


def latest_run(store_root: str, task: str) -> Optional[RunStore]:
    """The newest finished run of ``task`` (migration | evolution), verified; None when no run
    of the task was ever pointed to.

    The pointer must name a run folder of this store (a plain name) whose final model exists,
    whose ``lineage.json`` agrees with it (run id, task, model, table version), and whose model
    file has the SHA-256 recorded when the pointer was written.

    Raises:
        RunPointerError: any of those checks fails; the message names the pointer and the check.
            Nothing of the model has been unpickled.
    """
    pointer = latest_pointer(store_root, task)
    if not os.path.exists(pointer):
        return None
    rerun = f"; rerun `interest train --model {task}` to rewrite it"

    def refuse(why: str) -> RunPointerError:
        return RunPointerError(f"{pointer}: {why}{rerun}")

    try:
        with open(pointer) as fh:
            record = json.load(fh)
    except (OSError, ValueError) as exc:
        raise refuse(f"unreadable run pointer ({exc})") from exc
    run_id = record.get("run_id") if isinstance(record, dict) else None
    if not isinstance(run_id, str) or not run_id or run_id in (".", "..") or os.sep in run_id or "/" in run_id:
        raise refuse(f"run_id {run_id!r} is not the name of a run folder")
    store = RunStore(os.path.join(store_root, run_id))
    if not store.finished():
        raise refuse(f"names run {run_id}, which has no final model in the run store ({store.model})")
    try:
        with open(store.lineage) as fh:
            lineage = json.load(fh)
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
