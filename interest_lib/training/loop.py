"""The training loop that runs inside every rank (the remote function of the backend).

Imports torch and the model only inside the worker, like Horovod's Spark estimator, so the
driver never needs them to pickle the job. The loop is the same for every model and backend:
per epoch, seed (seed, epoch, rank) -> train on this rank's shard of the feed -> validate on a
shard -> all-reduce the sums -> rank 0 writes a checkpoint and a metrics line -> early stopping
decided from the all-reduced validation loss (so every rank stops together). A killed run
restarts from its newest checkpoint and ends with the same weights as an uninterrupted one:
shuffling and dropout depend only on (seed, epoch, rank), and the checkpoint holds the model,
the optimizer and the early-stopping state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from interest_lib.conf import TrainConf
from interest_lib.models import InputSizes
from interest_lib.runs import fs
from interest_lib.runs.store import RunStore, atomic_save, load_record

#: The validation quantity early stopping watches, per task (lower is better).
MONITOR = {"migration": "next_ce", "evolution": "js"}


@dataclass
class TrainJob:
    """Everything one rank needs, picklable: what to train, on which data, where to write."""

    model_name: str
    task: str
    params: Any
    sizes: InputSizes
    table_path: str
    table_version: int
    store_root: str
    backend: Any
    train: TrainConf = field(default_factory=TrainConf)
    """The training settings (feed, epochs, batch size, optimizer, early stopping, seed...)."""
    lineage: dict = field(default_factory=dict)
    warm_start: bool = False
    """The initial weights (the run's warm_init) are a trained model of this task on an older
    table version (``interest train --warm-start``): they are validated before the first epoch
    and kept unless an epoch beats them, and the weight average continues from them at full decay
    instead of warming up (so the short, gentler schedule refines the model instead of replacing it)."""


def _feeds(job: TrainJob, columns: list[str]):
    from interest_lib.training.feed import FeedSpec, make_feed

    t = job.train

    def feed(split: str, shuffle: bool):
        return make_feed(t.feed, FeedSpec(
            table_path=job.table_path, version=job.table_version, split=split, columns=columns,
            batch_size=t.batch_size, shuffle_buffer=t.shuffle_buffer if shuffle else 0,
            seed=t.seed, drop_last=shuffle))
    return feed("train", True), feed("validation", False)


def _to_device(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items() if hasattr(v, "to")}


def load_text_matrix(store: RunStore):
    """The (item vectors, event-text vectors) pair saved by the driver (or, once the run is
    finished and inputs.npz pruned, the copy its model record carries), or None."""
    if not store.has_inputs():
        if store.finished():
            from interest_lib.models.inference import frozen_text

            return frozen_text(load_record(store.model))
        return None
    import io

    import numpy as np

    from interest_lib.runs import fs

    with np.load(io.BytesIO(fs.read_bytes(store.inputs))) as data:
        return data["items"], data["texts"]


def sgd_step(forward, model, optimizer, batch: dict, grad_clip_norm: float):
    """One optimizer step on ``batch``: ``forward`` (the model, or its DDP wrapper) computes the
    outputs, ``model.loss`` the loss, gradients clipped to ``grad_clip_norm`` (0: no clipping);
    returns the loss tensor."""
    import torch

    loss, _ = model.loss(batch, forward(batch))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip_norm)
    optimizer.step()
    return loss


def scheduled_lr(t: TrainConf, step: int, steps_per_epoch: int) -> float:
    """The learning rate of global step ``step`` (0-based) under ``t.lr_schedule``: a function of
    the step number only, so a resumed run continues the schedule where the killed one was."""
    if t.lr_schedule == "cosine":
        total = max(1, t.epochs * steps_per_epoch)
        return t.learning_rate * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    return t.learning_rate


def warmed_up_updates(decay: float) -> int:
    """The fewest past updates after which :class:`WeightAverage`'s next update already uses the
    full ``decay`` (its warm-up decay after n updates is (1+n)/(10+n))."""
    n = max(0, math.floor((10.0 * decay - 1.0) / max(1.0 - decay, 1e-12)) - 2)
    while (2.0 + n) / (11.0 + n) < decay:
        n += 1
    return n


class WeightAverage:
    """Exponential moving average of a model's floating-point weights (``train.ema_decay``),
    updated after every step; integer buffers are copied as they are."""

    def __init__(self, model, decay: float, state: dict | None = None, continuing: bool = False):
        """``continuing``: the model is already trained (a warm start), so the average starts from
        its weights at full decay; otherwise the decay warms up and forgets the initial weights."""
        self.decay = decay
        self.updates = (int(state["updates"]) if state is not None
                        else warmed_up_updates(decay) if continuing else 0)
        self.shadow = ({k: v.detach().clone() for k, v in model.state_dict().items()}
                       if state is None else {k: v.clone() for k, v in state["shadow"].items()})

    def update(self, model) -> None:
        """Move the average towards the model's current weights."""
        import torch

        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        with torch.no_grad():
            for k, v in model.state_dict().items():
                if v.is_floating_point():
                    self.shadow[k].mul_(d).add_(v.detach(), alpha=1.0 - d)
                else:
                    self.shadow[k].copy_(v)

    def state(self) -> dict:
        """Checkpointable state (tensors and plain values)."""
        return {"updates": self.updates, "shadow": self.shadow}

    @contextlib.contextmanager
    def swapped_in(self, model):
        """Context: the model holds the averaged weights inside, its own ones again after."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield
        finally:
            model.load_state_dict(own)


def train_worker(job: TrainJob) -> dict:
    """Train ``job.model_name`` on this rank; rank 0 returns the per-epoch history."""
    import torch

    from interest_lib.models import build_model

    backend, t = job.backend, job.train
    device = backend.setup()
    rank, size = backend.rank, backend.size
    torch.set_num_threads(t.torch_threads or max(1, (os.cpu_count() or 1) // size))
    store = RunStore(job.store_root)

    torch.manual_seed(t.seed)
    text = load_text_matrix(store)
    model = build_model(job.model_name, job.params, job.sizes, text).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.learning_rate, weight_decay=t.weight_decay)
    state = {"epoch": -1, "best": float("inf"), "best_state": None, "bad_epochs": 0, "history": [], "stopped": False,
             "average": None}
    frozen_ref = frozen_reference(store, job.lineage)
    resumed_from = store.latest_checkpoint()
    if resumed_from:
        ckpt = load_record(resumed_from, map_location=device)
        check_frozen_reference(resumed_from, ckpt.get("frozen"), frozen_ref)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = ckpt["state"]
        if backend.is_chief:
            print(f"[train {job.model_name}] resuming after epoch {state['epoch'] + 1} from {resumed_from}", flush=True)
    elif fs.exists(store.warm_init):  # a warm start: the base run's weights on the new ids
        model.load_state_dict(load_record(store.warm_init, map_location=device)["state_dict"])
        if backend.is_chief:
            print(f"[train {job.model_name}] warm start from {store.warm_init}", flush=True)
    if backend.is_chief:
        write_epochs_log(store.epochs_log, state["history"])
    trained = backend.wrap_model(model)
    optimizer = backend.wrap_optimizer(optimizer, trained)
    train_feed, val_feed = _feeds(job, model.columns)
    steps = train_feed.steps_per_epoch(size)
    if steps == 0:
        raise ValueError(f"{job.table_path}@{job.table_version}: too few training rows for "
                         f"{size} ranks x batch size {t.batch_size}")
    monitor = MONITOR[job.task]
    average = (WeightAverage(model, t.ema_decay, state.get("average"), continuing=job.warm_start)
               if t.ema_decay > 0 else None)
    averaged = average.swapped_in if average else (lambda _model: contextlib.nullcontext())
    if job.warm_start and not resumed_from:
        # The bar a warm start must clear: the model it continues, on the new validation split.
        val = _validate(model, val_feed, rank, size, device)
        totals = backend.allreduce_sum(torch.cat([torch.zeros(2, dtype=torch.float64), val]).to(device)).cpu()
        base = _val_record(job.task, totals[2:])[f"val_{monitor}"]
        state.update(best=base, best_state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        if backend.is_chief:
            print(f"[train {job.model_name}] warm start: the base weights validate at val_{monitor} "
                  f"{base:.4f}; an epoch is kept only if it beats that", flush=True)

    def kept_weights() -> dict:
        """The weights a run validates and saves: the moving average when there is one."""
        return average.shadow if average else model.state_dict()

    for epoch in range(state["epoch"] + 1, t.epochs):
        if state["stopped"]:
            break
        torch.manual_seed(t.seed * 1000 + epoch * 10 + rank)
        started = time.perf_counter()
        trained.train()
        sums = torch.zeros(2, dtype=torch.float64)
        bar = _progress(steps, f"[train {job.model_name}] epoch {epoch + 1}/{t.epochs}", backend.is_chief)
        for i, batch in enumerate(train_feed.batches(rank, size, epoch)):
            batch = _to_device(batch, device)
            for group in optimizer.param_groups:
                group["lr"] = scheduled_lr(t, epoch * steps + i, steps)
            loss = sgd_step(trained, model, optimizer, batch, t.grad_clip_norm)
            if average:
                average.update(model)
            n = _rows(batch)
            sums += torch.tensor([loss.item() * n, n], dtype=torch.float64)
            bar.update(1)
        bar.close()
        with averaged(model):
            val = _validate(model, val_feed, rank, size, device)
        totals = backend.allreduce_sum(torch.cat([sums, val]).to(device)).cpu()
        record = {"epoch": epoch + 1, "train_loss": float(totals[0] / totals[1]),
                  **_val_record(job.task, totals[2:]),
                  "seconds": round(time.perf_counter() - started, 2), "samples": int(totals[1])}
        score = record[f"val_{monitor}"]
        if score < state["best"] - t.min_delta:
            state.update(best=score, bad_epochs=0,
                         best_state={k: v.detach().cpu().clone() for k, v in kept_weights().items()})
        else:
            state["bad_epochs"] += 1
        state["stopped"] = state["bad_epochs"] >= t.patience
        state["average"] = average.state() if average else None
        state["epoch"] = epoch
        state["history"].append(record)
        if backend.is_chief:
            print(f"[train {job.model_name}] epoch {epoch + 1}: " + json.dumps(record), flush=True)
            # Checkpoint first: the log line of an epoch is written only once the epoch is saved.
            # The frozen text tables are not in model.state_dict() (non-persistent buffers): the
            # checkpoint references inputs.npz by SHA-256 and the ref tables by version instead.
            atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": state,
                         "frozen": frozen_ref}, store.checkpoint(epoch))
            store.prune_checkpoints(keep=store.checkpoint(epoch))
            store.append_epoch(record)
        backend.barrier()

    if backend.is_chief:
        atomic_save({"model_name": job.model_name, "task": job.task,
                     "params": dataclasses.asdict(job.params), "sizes": dataclasses.asdict(job.sizes),
                     "text_dim": text[0].shape[1] if text is not None else 0,
                     "state_dict": state["best_state"] or kept_weights(),
                     "history": state["history"], "best": state["best"], "lineage": job.lineage,
                     # once, outside the state dict: model.pt stays self-contained for scoring
                     "frozen": ({} if text is None else
                                {"item_text": torch.as_tensor(text[0]), "event_text": torch.as_tensor(text[1])})},
                    store.model)
    backend.barrier()
    backend.shutdown()
    return {"history": state["history"], "best": state["best"], "resumed_from": resumed_from}


def frozen_reference(store: RunStore, lineage: dict) -> dict:
    """What a checkpoint records instead of the frozen text tables: the SHA-256 of the run's
    inputs.npz and the ref table versions it was built from (``lineage["frozen_tables"]``)."""
    if not store.has_inputs():
        return {}
    from interest_lib.runs.store import file_sha256

    return {"inputs_sha256": file_sha256(store.inputs), "tables": dict(lineage.get("frozen_tables") or {})}


def check_frozen_reference(checkpoint: str, saved, current: dict) -> None:
    """Refuse to resume from ``checkpoint`` when the frozen tables it was trained with are not
    the ones the run store holds now (a resumed model would silently read other embeddings).

    Raises:
        ValueError: naming the checkpoint and both references.
    """
    if saved is None:  # written before checkpoints referenced their frozen tables
        return
    if saved.get("inputs_sha256") != current.get("inputs_sha256"):
        raise ValueError(f"{checkpoint} was trained with frozen text tables {saved or 'none'}, but the run "
                         f"store now holds {current or 'none'}: rerun with --fresh")


def write_epochs_log(path: str, history: list[dict]) -> None:
    """Rewrite ``epochs.jsonl`` from a checkpoint's history (one line per saved epoch), atomically.

    Called when a rank-0 run starts or resumes: the checkpoint is the truth, so a kill between
    saving an epoch's checkpoint and appending its line (or a partly written line) leaves no
    missing, duplicate or broken line behind.
    """
    fs.write_bytes(path, "".join(json.dumps(record) + "\n" for record in history).encode())


#: Validation sums per task, in order; the last is the row count.
VAL_KEYS = {"migration": ["next_ce", "switch_bce", "hr10"], "evolution": ["js", "stage_acc", "stage_known"]}
#: Validation sums averaged over another sum than the row count: stage accuracy counts only the
#: rows whose label stage is known (as evaluation does).
VAL_DENOMINATORS = {"stage_acc": "stage_known"}


def _val_record(task: str, sums) -> dict:
    """``val_<key>`` means from the all-reduced validation sums (row count last)."""
    keys = VAL_KEYS[task]
    value = {k: float(sums[i]) for i, k in enumerate(keys)}
    rows = max(float(sums[-1]), 1.0)
    return {f"val_{k}": value[k] / (max(value[VAL_DENOMINATORS[k]], 1.0) if k in VAL_DENOMINATORS else rows)
            for k in keys}


def _validate(model, feed, rank: int, size: int, device):
    """Sums of the validation quantities on this rank's shard, plus the row count."""
    import torch
    import torch.nn.functional as F

    model.eval()
    task = model.task
    sums = torch.zeros(len(VAL_KEYS[task]) + 1, dtype=torch.float64)
    with torch.no_grad():
        for batch in feed.batches(rank, size, 0):
            batch = _to_device(batch, device)
            out = model(batch)
            if task == "migration":
                target = batch["next_category"]
                ce = F.cross_entropy(out["logits"], target, reduction="sum")
                bce = F.binary_cross_entropy_with_logits(out["switch_logit"], batch["is_switch"].float(), reduction="sum")
                hit = (out["logits"].topk(10, -1).indices == target[:, None]).any(-1).sum()
                parts = [ce, bce, hit]
            else:
                from interest_lib.models.common import js_divergence

                js = js_divergence(out["forecast"], model.target(batch)).sum()
                pred = out["stage_logits"][:, 1:].argmax(-1) + 1
                known = batch["next_stage"] != 0
                parts = [js, (pred == batch["next_stage"])[known].sum(), known.sum()]
            sums += torch.tensor([float(p) for p in parts] + [_rows(batch)], dtype=torch.float64)
    return sums


def _rows(batch: dict) -> int:
    return next(v for v in batch.values() if hasattr(v, "shape")).shape[0]


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, show: bool):
    """A tqdm bar on rank 0 (stderr), nothing elsewhere."""
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, mininterval=2.0, leave=False)
