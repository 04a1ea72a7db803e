"""The GPU check's PyTorch part, for a GPU machine that has PyTorch but no Java, Spark or network.

    python bench/gpu_torch_check.py pack --warehouse WH --store RUNS --out DIR     # here
    python bench/gpu_torch_check.py check --packed DIR [--epochs 2] [--cpu-ranks 2] [--copies 20]

``scripts/gpu_check.sh`` runs the whole pipeline on a GPU machine, which needs Java and pip. Where
neither is at hand (a lent accelerator with no network), ``pack`` copies what the training loop
and the scorer read, a featurized ``gold.training_sequences`` Delta table and the finished runs of
both models (their ``lineage.json`` and ``model.pt`` without the weights), into one small folder, and ``check`` runs
the project's own code on it: :func:`interest_lib.training.loop.train_worker` under torchrun with
the TorchDistributor backend's rank side (DDP over NCCL, one rank per GPU; gloo on the CPU), then
:func:`interest_lib.models.inference.predict_arrays` on the GPU and on the CPU. It prints samples/s
and rows/s beside the CPU figures of the same run, and exits 1 on any error, or when a GPU run
allocated no GPU memory (it fell back to the CPU); 3 when torch sees no GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..")
sys.path.insert(0, REPO)
TASKS = ("migration", "evolution")


def pack(warehouse: str, store: str, out: str) -> None:
    """Copy gold.training_sequences and the latest finished run of each task into ``out``."""
    import torch

    from interest_lib.runs.store import load_record

    os.makedirs(out, exist_ok=True)
    shutil.copytree(os.path.join(warehouse, "gold", "training_sequences"), os.path.join(out, "sequences"),
                    dirs_exist_ok=True)
    for task in TASKS:
        latest = json.load(open(os.path.join(store, f"latest-{task}.json")))
        run = os.path.join(store, latest["run_id"])
        os.makedirs(os.path.join(out, task), exist_ok=True)
        shutil.copy(os.path.join(run, "lineage.json"), os.path.join(out, task, "lineage.json"))
        # what a new run of the model needs (name, params, sizes, frozen text), not its weights
        record = load_record(os.path.join(run, "model.pt"), map_location="cpu")
        record.pop("state_dict", None)
        torch.save(record, os.path.join(out, task, "record.pt"))
    print(f"packed {out}: {sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs) / 2**20:.1f} MB")


def _job(packed: str, task: str, device: str, ranks: int, epochs: int, store_root: str):
    """The TrainJob ``interest train`` would build for the packed run, on ``device``."""
    import numpy as np

    from interest_lib.conf import TrainConf, model_spec
    from interest_lib.models import InputSizes
    from interest_lib.models.inference import frozen_text
    from interest_lib.runs import fs
    from interest_lib.runs.store import RunStore, load_record, write_json
    from interest_lib.training.backend import TorchDistributorBackend
    from interest_lib.training.loop import TrainJob

    record = load_record(os.path.join(packed, task, "record.pt"), map_location="cpu")
    lineage = json.load(open(os.path.join(packed, task, "lineage.json")))
    store = RunStore(store_root)
    if int(os.environ.get("RANK", "0")) == 0:
        store.create()
        text = frozen_text(record)
        if text is not None and not fs.exists(store.inputs):
            fs.write_with(store.inputs, lambda fh: np.savez(fh, items=text[0], texts=text[1]))
        write_json(store.lineage, lineage)  # last: the other ranks wait for it
    else:
        while not fs.exists(store.lineage):
            time.sleep(0.2)
    fields = {f.name for f in dataclasses.fields(TrainConf)}
    train = TrainConf(**{k: v for k, v in lineage["conf"]["train"].items() if k in fields})
    train = dataclasses.replace(train, epochs=epochs, patience=99, num_processes=ranks, torch_threads=0)
    return TrainJob(model_name=record["model_name"], task=task,
                    params=model_spec(record["model_name"]).saved_params(record["params"]),
                    sizes=InputSizes(**record["sizes"]), table_path=os.path.join(packed, "sequences"),
                    table_version=int(lineage["table_version"]), store_root=store_root,
                    backend=TorchDistributorBackend(ranks, local_mode=True, use_gpu=device == "cuda"),
                    train=train, lineage=lineage)


def worker(args) -> None:
    """One torchrun rank: train the packed run's model with the project's loop."""
    import torch

    from interest_lib.training.loop import train_worker

    train_worker(_job(args.packed, args.task, args.device, args.ranks, args.epochs, args.store_root))
    if args.device == "cuda":
        print(f"RANK {os.environ.get('RANK')} cuda peak memory {torch.cuda.max_memory_allocated()}", flush=True)


def _rate(store_root: str) -> float:
    lines = [json.loads(x) for x in open(os.path.join(store_root, "epochs.jsonl")).read().splitlines()]
    return sum(x["samples"] for x in lines) / max(sum(x["seconds"] for x in lines), 1e-9)


def _scoring_rows(packed: str, copies: int) -> dict:
    """Every row of the packed table's input columns, ``copies`` times (read once, scored by
    both models on both devices)."""
    import numpy as np

    from interest_lib.models import SEQUENCE_COLUMNS
    from interest_lib.storage.arrays import read_arrays

    arrays = read_arrays(os.path.join(packed, "sequences"), None, SEQUENCE_COLUMNS)
    return {k: np.concatenate([v] * copies) for k, v in arrays.items()}


def _score_rate(arrays: dict, model_pt: str, device: str) -> float:
    import torch

    from interest_lib.models.inference import load_trained, predict_arrays

    model, _ = load_trained(model_pt, device)
    n = len(next(iter(arrays.values())))
    predict_arrays(model, {k: v[:4096] for k, v in arrays.items()}, batch_size=4096)  # warm up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    predict_arrays(model, arrays, batch_size=4096)
    if device == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def check(args) -> int:
    """Train and score on cuda and cpu; print the table; 0 passed, 1 failed, 3 no GPU."""
    import torch

    if not torch.cuda.is_available():
        print("gpu_torch_check: FAILED: torch sees no CUDA GPU", file=sys.stderr)
        return 3
    gpus = torch.cuda.device_count()
    print(f"gpu_torch_check: {gpus} x {torch.cuda.get_device_name(0)}, torch {torch.__version__} "
          f"(CUDA {torch.version.cuda}), NCCL {'.'.join(map(str, torch.cuda.nccl.version()))}", flush=True)
    work = args.work or os.path.join("/tmp", f"gpu-torch-check-{os.getpid()}")
    rates: dict = {}
    scoring_rows = _scoring_rows(args.packed, args.copies)
    for task in TASKS:
        for device, ranks in (("cuda", gpus), ("cpu", args.cpu_ranks)):
            root = os.path.join(work, f"{task}-{device}")
            shutil.rmtree(root, ignore_errors=True)
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
                   os.path.abspath(__file__), "worker", "--packed", args.packed, "--task", task, "--device", device,
                   "--ranks", str(ranks), "--epochs", str(args.epochs), "--store-root", root]
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])), OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 2) // ranks)))
            started = time.perf_counter()
            out = subprocess.run(cmd, env=env, capture_output=True, text=True)
            log = out.stdout + out.stderr
            with open(os.path.join(work, f"train-{task}-{device}.log"), "w") as fh:
                fh.write(log)
            if out.returncode != 0 or any(s in log for s in ("CUDA error", "NCCL error", "out of memory")):
                print(log[-4000:], file=sys.stderr)
                print(f"gpu_torch_check: FAILED: train {task} on {device} (exit {out.returncode})", file=sys.stderr)
                return 1
            if device == "cuda" and not any(int(x.split()[-1]) > 0 for x in log.splitlines() if "cuda peak memory" in x):
                print(f"gpu_torch_check: FAILED: train {task} on cuda allocated no GPU memory", file=sys.stderr)
                return 1
            rates[f"train {task} (samples/s)", device] = _rate(root)
            print(f"gpu_torch_check: train {task} on {device}: {time.perf_counter() - started:.0f} s", flush=True)
        model_pt = os.path.join(work, f"{task}-cuda", "model.pt")
        for device in ("cuda", "cpu"):
            rates[f"score {task}, in-process (rows/s)", device] = _score_rate(scoring_rows, model_pt, device)
    print(f"\ntraining: cuda {gpus} rank(s) over NCCL, cpu {args.cpu_ranks} rank(s) over gloo; {args.epochs} epochs")
    print(f"{'measure':<44} {'cuda':>12} {'cpu':>12} {'ratio':>8}")
    for name in dict.fromkeys(k for k, _ in rates):
        g, c = rates[name, "cuda"], rates[name, "cpu"]
        print(f"{name:<44} {g:>12,.0f} {c:>12,.0f} {g / c:>8.2f}")
    print("gpu_torch_check: PASSED")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--warehouse", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--out", required=True)
    c = sub.add_parser("check")
    c.add_argument("--packed", required=True)
    c.add_argument("--epochs", type=int, default=2)
    c.add_argument("--cpu-ranks", type=int, default=2)
    c.add_argument("--copies", type=int, default=20)
    c.add_argument("--work", default="")
    w = sub.add_parser("worker")
    for name in ("--packed", "--task", "--device", "--store-root"):
        w.add_argument(name, required=True)
    w.add_argument("--ranks", type=int, required=True)
    w.add_argument("--epochs", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "pack":
        pack(args.warehouse, args.store, args.out)
        return 0
    if args.command == "worker":
        worker(args)
        return 0
    args.packed = os.path.abspath(args.packed)
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
