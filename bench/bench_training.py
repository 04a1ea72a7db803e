"""Benchmark: the training feed, the training step, and distributed training end to end.

    python bench/bench_training.py [--warehouse ./warehouse] [--model migration_transformer] [--epochs 2]

WAREHOUSE must hold gold.training_sequences and ref.vocab (``make run``). Each part runs in its
own process, so every peak-memory figure belongs to one part:

* end to end through ``run_train`` (TorchDistributor, torchrun, DDP over gloo or NCCL) with
  ``train.num_processes`` 1 and 2: per-epoch throughput from the run's history, the launch and
  setup overhead (wall time minus the epochs), and peak memory of the driver, the JVM and the
  training processes;
* in one process, no Spark: the DeltaArrowFeed alone over the train split (training settings),
  then the same batches preloaded in memory through forward + backward + optimizer step alone,
  and one validation pass, so the feed/step ratio says whether the feed is the bottleneck.

Prints a table (name, value, unit, ratio vs a named baseline) and writes it as JSON to
bench/results/training.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

TORCH_THREADS = 2


def _mb(kb: float) -> float:
    return kb / 1024


def _config(warehouse: str, store: str, epochs: int, procs: int):
    from interest_lib.conf import load_config

    return load_config(overrides=[
        f"storage.warehouse={warehouse}", f"train.store={store}", f"train.epochs={epochs}",
        "train.patience=99", f"train.num_processes={procs}", "spark.master=local[2]",
        "spark.driver_memory=2g", "spark.shuffle_partitions=4", "run.log_level=WARNING"])


class TreeRss:
    """Samples the summed RSS of this process and all its descendants (JVM, torchrun, ranks)
    every ``interval`` seconds and keeps the peak: an estimate, short spikes can be missed."""

    def __init__(self, interval: float = 0.2):
        import psutil

        self.me, self.interval, self.peak = psutil.Process(), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for proc in [self.me, *self.me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> "TreeRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _jvm_peak_mb(spark) -> float | None:
    """VmHWM (the kernel's peak RSS) of the Spark driver JVM, or None when it is not a child."""
    proc = getattr(spark.sparkContext._gateway, "proc", None)
    try:
        with open(f"/proc/{proc.pid}/status") as fh:
            return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM")) / 1024
    except (AttributeError, OSError, StopIteration):
        return None


def end_to_end(warehouse: str, store: str, model: str, epochs: int, procs: int) -> dict:
    """``run_train`` with ``procs`` TorchDistributor processes: wall time, history, memory."""
    from interest_lib.logs import setup_logging
    from interest_lib.spark import get_spark
    from interest_lib.storage import Tables
    from interest_lib.training.job import resolve_gpu, run_train

    setup_logging("WARNING")
    conf = _config(warehouse, store, epochs, procs)
    started = time.perf_counter()
    spark = get_spark(conf)
    tables = Tables(spark, conf.storage)
    spark_s = time.perf_counter() - started
    with TreeRss() as tree:
        started = time.perf_counter()
        report = run_train(spark, conf, tables, model_name=model, fresh=True)
        wall = time.perf_counter() - started
    from interest_lib.training.store import load_record

    history = load_record(os.path.join(report.store, "model.pt"))["history"]
    out = {"procs": procs, "spark_start_s": spark_s, "wall_s": wall, "history": history,
           "store": report.store, "gpu": resolve_gpu(conf, spark),
           "driver_peak_mb": _mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
           "child_peak_mb": _mb(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss),
           "jvm_peak_mb": _jvm_peak_mb(spark), "tree_peak_mb": tree.peak / 2**20}
    spark.stop()
    return out


def _sizes(warehouse: str, top_k: int):
    """InputSizes from ref.vocab (largest idx per kind), read without Spark."""
    import deltalake
    import pyarrow.compute as pc

    from interest_lib.models import InputSizes
    from interest_lib.storage.catalog import REF_VOCAB, table_path

    vocab = deltalake.DeltaTable(table_path(warehouse, REF_VOCAB)).to_pyarrow_dataset().to_table(columns=["kind", "idx"])
    n = {k: pc.max(pc.filter(vocab["idx"], pc.equal(vocab["kind"], k))).as_py() or 0
         for k in ("category", "item", "text")}
    return InputSizes(categories=n["category"], items=n["item"], texts=n["text"], top_k=top_k)


def feed_and_step(warehouse: str, store: str, model_name: str, epochs: int) -> dict:
    """Feed alone, step alone on preloaded batches, one validation pass; no Spark."""
    import deltalake
    import torch

    from interest_lib.models import build_model
    from interest_lib.models.inference import pick_device
    from interest_lib.storage.catalog import GOLD_TRAINING_SEQUENCES, table_path
    from interest_lib.training.feed import DeltaArrowFeed, FeedSpec
    from interest_lib.training.loop import _validate, load_text_matrix, sgd_step
    from interest_lib.training.store import RunStore

    torch.set_num_threads(TORCH_THREADS)
    conf, device = _config(warehouse, store, epochs, 1), pick_device()
    t = conf.train
    path = table_path(warehouse, GOLD_TRAINING_SEQUENCES)
    version = deltalake.DeltaTable(path).version()
    torch.manual_seed(t.seed)
    # The same model as trained end to end, text matrices included (saved by run_train).
    text = load_text_matrix(RunStore(store)) if store else None
    model = build_model(model_name, getattr(conf.models, model_name), _sizes(warehouse, conf.features.top_k), text).to(device)

    def spec(split: str, train: bool) -> FeedSpec:
        return FeedSpec(path, version, split, model.columns, t.batch_size,
                        t.shuffle_buffer if train else 0, t.seed, drop_last=train)

    feed = DeltaArrowFeed(spec("train", True))
    started, rows, batches = time.perf_counter(), 0, []
    for epoch in range(epochs):
        for batch in feed.batches(0, 1, epoch):
            rows += len(next(iter(batch.values())))
            if epoch == 0:
                batches.append(batch)
    feed_s = time.perf_counter() - started

    batches = [{k: v.to(device) for k, v in b.items()} for b in batches]
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.learning_rate, weight_decay=t.weight_decay)

    def step(batch: dict) -> None:  # training.loop.train_worker's step; .item() waits for it
        sgd_step(model, model, optimizer, batch, t.grad_clip_norm).item()

    model.train()
    for batch in batches[:3]:  # warm-up (allocator, kernels), not timed
        step(batch)
    started, samples = time.perf_counter(), 0
    for _ in range(epochs):
        for batch in batches:
            step(batch)
            samples += len(next(iter(batch.values())))
    if device == "cuda":
        torch.cuda.synchronize()
    step_s = time.perf_counter() - started

    val_feed = DeltaArrowFeed(spec("validation", False))
    started = time.perf_counter()
    val_rows = int(_validate(model, val_feed, 0, 1, device)[-1])
    val_s = time.perf_counter() - started
    return {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
            "table_version": version, "batch_size": t.batch_size, "batches": len(batches), "feed_rows": rows, "feed_s": feed_s,
            "step_samples": samples, "step_s": step_s, "val_rows": val_rows, "val_s": val_s,
            "params": sum(p.numel() for p in model.parameters()), "text": text is not None,
            "peak_mb": _mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)}


def _throughput(run: dict) -> float:
    """Samples per second of the run's epochs (each epoch's time includes its validation)."""
    return sum(r["samples"] for r in run["history"]) / sum(r["seconds"] for r in run["history"])


def render(local: dict, runs: list[dict]) -> list[dict]:
    """The result rows: name, value, unit, ratio and the baseline it is relative to."""
    feed = local["feed_rows"] / local["feed_s"]
    step = local["step_samples"] / local["step_s"]
    val = local["val_rows"] / local["val_s"]
    rows = [
        ("feed alone: DeltaArrowFeed, train split, 1 rank", feed, "rows/s", feed / step, "step alone"),
        (f"step alone: fwd+bwd+AdamW, preloaded, {TORCH_THREADS} threads", step, "samples/s", 1.0, "step alone"),
        (f"feed / step: the feed is {'not ' if feed > step else ''}the bottleneck", feed / step, "x", None, ""),
        # train_worker reads the next batch between steps (no prefetch): feed and step add up.
        ("feed share of a feed+step epoch (serial, as in loop.py)", step / (feed + step), "share", None, ""),
        ("validation pass: feed + forward, no grad", val, "rows/s", val / step, "step alone"),
    ]
    one = _throughput(runs[0])
    for run in runs:
        n, tput = run["procs"], _throughput(run)
        epoch_s = sum(r["seconds"] for r in run["history"])
        label = f"run_train, {n} proc{'s' if n > 1 else ''}"
        rows += [
            (f"{label}: epoch throughput (train + validation)", tput, "samples/s", tput / one, "run_train, 1 proc"),
            (f"{label}: epoch throughput vs step alone", tput, "samples/s", tput / step, "step alone"),
            (f"{label}: wall time of run_train", run["wall_s"], "s", run["wall_s"] / runs[0]["wall_s"], "run_train, 1 proc"),
            (f"{label}: launch + setup overhead (wall - sum of epochs)", run["wall_s"] - epoch_s, "s",
             (run["wall_s"] - epoch_s) / run["wall_s"], "share of wall"),
        ]
    rows.append(("peak RSS: feed + step process (no Spark)", local["peak_mb"], "MB", None, ""))
    for run in runs:
        n = f"{run['procs']} proc{'s' if run['procs'] > 1 else ''}"
        rows += [
            (f"peak RSS, {n}: Python driver (getrusage SELF)", run["driver_peak_mb"], "MB", None, ""),
            (f"peak RSS, {n}: largest single training process (getrusage CHILDREN)",
             run["child_peak_mb"], "MB", None, ""),
            (f"peak RSS, {n}: Spark driver JVM (VmHWM)", run["jvm_peak_mb"] or float("nan"), "MB", None, ""),
            (f"peak RSS, {n}: whole process tree (driver, JVM, Spark Python workers, torchrun, ranks) "
             "summed, sampled every 0.2 s",
             run["tree_peak_mb"], "MB", None, ""),
        ]
    return [{"name": r[0], "value": r[1], "unit": r[2], "ratio": r[3], "baseline": r[4]} for r in rows]


def _print(rows: list[dict], local: dict, runs: list[dict], model: str, epochs: int, load: tuple) -> None:
    import torch

    cuda = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    print(f"Machine: {os.cpu_count()} cores, torch {torch.__version__}, CUDA: {cuda}; "
          f"feed+step on {local['device']}, run_train on {'GPU' if runs[0]['gpu'] else 'CPU'}; "
          f"1-min load average {load[0]:.1f} at start, {load[1]:.1f} at end (other work skews every number).")
    print(f"Model {model} ({local['params']:,} parameters, text vectors: {local['text']}); "
          f"gold.training_sequences v{local['table_version']}: {local['feed_rows'] // epochs:,} train rows/epoch "
          f"= {local['batches']} batches of {local['batch_size']}; {epochs} epochs; Spark start "
          f"{runs[0]['spark_start_s']:.1f} s (not in wall).\n")
    print("| measure | value | unit | ratio | baseline |")
    print("|---|---:|---|---:|---|")
    for r in rows:
        value = f"{r['value']:,.0f}" if abs(r["value"]) >= 100 else f"{r['value']:.2f}"
        if r["unit"] == "share":
            value = f"{r['value']:.1%}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        if r["baseline"].startswith("share"):
            ratio = f"{r['ratio']:.0%}"
        print(f"| {r['name']} | {value} | {r['unit']} | {ratio} | {r['baseline']} |")
    for run in runs:
        epochs_txt = ", ".join(f"{h['samples'] / h['seconds']:,.0f}" for h in run["history"])
        print(f"\nrun_train {run['procs']} proc: samples per epoch {run['history'][0]['samples']:,} "
              f"(drop_last on every rank); per-epoch samples/s {epochs_txt}; "
              f"epoch seconds {[h['seconds'] for h in run['history']]}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", default=os.path.join(HERE, "..", "warehouse"))
    parser.add_argument("--model", default="migration_transformer")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--phase", choices=["e2e", "local"], help=argparse.SUPPRESS)
    parser.add_argument("--procs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--store", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    warehouse = os.path.abspath(args.warehouse)
    if args.phase == "e2e":
        print("RESULT " + json.dumps(end_to_end(warehouse, args.store, args.model, args.epochs, args.procs)))
        return
    if args.phase == "local":
        print("RESULT " + json.dumps(feed_and_step(warehouse, args.store, args.model, args.epochs)))
        return

    load_start = os.getloadavg()[0]
    work = tempfile.mkdtemp(prefix="bench-training-")

    def run(*extra) -> dict:
        cmd = [sys.executable, os.path.abspath(__file__), "--warehouse", warehouse, "--model", args.model,
               "--epochs", str(args.epochs), *extra]
        # In the temp folder, so Spark's local metastore and warehouse folders land there.
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
        if proc.returncode:
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
            raise SystemExit(f"benchmark step failed: {' '.join(cmd)}")
        return json.loads([l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1][7:])

    try:
        runs = []
        for procs in (1, 2):
            print(f"run_train with {procs} process(es) ...", file=sys.stderr, flush=True)
            runs.append(run("--phase", "e2e", "--procs", str(procs), "--store", os.path.join(work, f"runs{procs}")))
        print("feed and step alone ...", file=sys.stderr, flush=True)
        local = run("--phase", "local", "--store", runs[0]["store"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = render(local, runs)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "training.json"), "w") as fh:
        json.dump({"model": args.model, "epochs": args.epochs, "local": local, "runs": runs, "rows": rows}, fh, indent=2)
    _print(rows, local, runs, args.model, args.epochs, (load_start, os.getloadavg()[0]))


if __name__ == "__main__":
    main()
