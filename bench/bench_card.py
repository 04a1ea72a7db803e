"""Benchmark: the design card's path against the default one (issue 6). Card env only.

    .venv-card/bin/python bench/bench_card.py [--warehouse ./warehouse] [--model migration_transformer]
                                               [--epochs 2] [--passes 5]

On the same training sequences (gold.training_sequences of WAREHOUSE at its current version, read
only; ``make run`` builds it):

* **Feeds, rows/s** over the ``train`` split with the model's columns, one process, no Spark,
  at two levels. Training feeds: the native Delta feed vs the Petastorm feed, both as training
  uses them (shuffle buffer, batches of ``train.batch_size``, tensors; Petastorm with one reader
  thread so the order is deterministic). Readers alone (row groups to numpy columns, nothing
  else): the native feed's reader vs Petastorm's ``make_batch_reader`` with 1 and with 10 reader
  threads (its default: Petastorm at its fastest). Best of ``--passes`` full passes each; the
  target is native >= 2x Petastorm.
* **Training, samples/s** of ``run_train`` with 2 processes, TorchDistributor (DDP) vs Horovod
  (``horovod.spark.run``, gloo), both fed by the native feed so only the backend differs, plus the
  whole card path (Horovod + Petastorm). Samples/s = samples / seconds of the epochs (rank 0's
  timing, validation included); wall = launch to result.

One run; prints a table with ratios and writes bench/results/card.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LOAD_AT_START = ""
sys.path.insert(0, os.path.join(HERE, ".."))


def _conf(warehouse: str, store: str, epochs: int, backend: str, feed: str):
    from interest_lib.conf import load_config

    conf = load_config(overrides=[
        f"storage.warehouse={warehouse}", f"train.store={store}", f"train.epochs={epochs}",
        "train.patience=99", "train.num_processes=2", "spark.master=local[2]",
        "spark.driver_memory=2g", "spark.shuffle_partitions=4", "run.log_level=WARNING"])
    conf.train.backend, conf.train.feed = backend, feed  # set after validation: works before and after conf allows them
    return conf


def _rows(batch) -> int:
    return len(next(iter(batch.values())))


def bench_feeds(warehouse: str, model_name: str, passes: int) -> tuple[list[dict], list[str]]:
    """Rows/s of the native feed, the Petastorm feed and Petastorm's reader alone (best pass)."""
    import deltalake

    from interest_lib.conf import load_config
    from interest_lib.models import model_class
    from interest_lib.storage.catalog import GOLD_TRAINING_SEQUENCES, table_path
    from interest_lib.training.feed import DeltaArrowFeed, FeedSpec
    from interest_lib.training.petastorm_feed import PetastormFeed

    conf = load_config()
    path = table_path(warehouse, GOLD_TRAINING_SEQUENCES)
    version = deltalake.DeltaTable(path).version()
    columns = list(model_class(model_name).columns)
    spec = FeedSpec(path, version, "train", columns, batch_size=conf.train.batch_size,
                    shuffle_buffer=conf.train.shuffle_buffer, seed=conf.train.seed, drop_last=True)
    native, petastorm = DeltaArrowFeed(spec), PetastormFeed(spec)

    def best(label: str, run) -> dict:
        times, rows = [], 0
        for epoch in range(passes):
            started = time.perf_counter()
            rows = run(epoch)
            times.append(time.perf_counter() - started)
        t = min(times)
        return {"name": label, "rows": rows, "seconds": t, "rows_per_s": rows / t}

    def feed_pass(feed):
        return lambda epoch: sum(_rows(b) for b in feed.batches(0, 1, epoch))

    def native_reader_pass(epoch):  # row group -> numpy columns, nothing else (as make_batch_reader)
        return sum(len(native._read(unit)[columns[0]]) for unit in native._units)

    def reader_pass(threads):
        def run(epoch):
            rows = 0
            with petastorm.reader(0, 1, epoch, workers_count=threads, shuffle_row_groups=True) as reader:
                for item in reader:
                    rows += len(item[0])
            return rows
        return run

    return [best("native Delta feed (training batches, tensors)", feed_pass(native)),
            best("Petastorm feed (training batches, tensors)", feed_pass(petastorm)),
            best("native reader alone (numpy per row group)", native_reader_pass),
            best("Petastorm make_batch_reader alone (numpy, 1 thread)", reader_pass(1)),
            best("Petastorm make_batch_reader alone (numpy, 10 threads)", reader_pass(10))], columns


def bench_training(warehouse: str, model: str, epochs: int) -> list[dict]:
    """run_train with 2 processes on each backend (and the whole card path)."""
    from interest_lib.logs import setup_logging
    from interest_lib.spark import get_spark
    from interest_lib.storage import Tables
    from interest_lib.training.job import run_train
    from interest_lib.training.store import load_record

    setup_logging("WARNING")
    out = []
    spark = None
    with tempfile.TemporaryDirectory(prefix="bench-card-") as tmp:
        for label, backend, feed in (("TorchDistributor + native feed", "torch_distributor", "delta"),
                                     ("Horovod + native feed", "horovod", "delta"),
                                     ("Horovod + Petastorm (card path)", "horovod", "petastorm")):
            conf = _conf(warehouse, os.path.join(tmp, backend + "-" + feed), epochs, backend, feed)
            if spark is None:
                spark = get_spark(conf)
            tables = Tables(spark, conf.storage)
            started = time.perf_counter()
            report = run_train(spark, conf, tables, model_name=model, fresh=True)
            wall = time.perf_counter() - started
            history = load_record(os.path.join(report.store, "model.pt"))["history"]
            samples = sum(h["samples"] for h in history)
            seconds = sum(h["seconds"] for h in history)
            out.append({"name": label, "samples": samples, "epoch_seconds": seconds,
                        "samples_per_s": samples / seconds, "wall_s": wall,
                        "final_val_loss": history[-1].get("val_next_ce", history[-1].get("val_js"))})
    if spark is not None:
        spark.stop()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", default=os.path.join(HERE, "..", "warehouse"))
    parser.add_argument("--model", default="migration_transformer")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args(argv)
    warehouse = os.path.abspath(args.warehouse)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    global LOAD_AT_START
    LOAD_AT_START = " ".join(f"{x:.1f}" for x in os.getloadavg())
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    import numpy
    import pyarrow
    import pyspark
    import torch

    feeds, columns = bench_feeds(warehouse, args.model, args.passes)
    training = [] if args.skip_training else bench_training(warehouse, args.model, args.epochs)

    lines = [f"bench_card: {warehouse} gold.training_sequences, split train, {len(columns)} columns; "
             f"{os.cpu_count()} cores, torch {torch.__version__}, pyspark {pyspark.__version__}, "
             f"pyarrow {pyarrow.__version__}, numpy {numpy.__version__}, python {platform.python_version()}",
             f"load average at start {LOAD_AT_START}", "",
             f"{'feed (best of %d passes)' % args.passes:56s} {'rows':>8s} {'rows/s':>10s} {'native / this':>14s}"]
    for i, f in enumerate(feeds):
        native = feeds[0 if i < 2 else 2]["rows_per_s"]  # feeds vs the native feed, readers vs the native reader
        lines.append(f"{f['name']:56s} {f['rows']:8d} {f['rows_per_s']:10.0f} {native / f['rows_per_s']:13.2f}x")
    feed_ratio = feeds[0]["rows_per_s"] / feeds[1]["rows_per_s"]
    reader_ratio = feeds[2]["rows_per_s"] / max(f["rows_per_s"] for f in feeds[3:])
    lines.append(f"target native >= 2x Petastorm: training feeds {feed_ratio:.2f}x, readers alone {reader_ratio:.2f}x "
                 f"(vs Petastorm's faster setting) -> {'MET' if min(feed_ratio, reader_ratio) >= 2 else 'NOT MET'}")
    if training:
        base = training[0]["samples_per_s"]
        lines += ["", f"{'training, 2 processes, %s, %d epochs' % (args.model, args.epochs):52s} "
                      f"{'samples':>8s} {'samples/s':>10s} {'vs TD':>7s} {'wall s':>8s}"]
        for t in training:
            lines.append(f"{t['name']:52s} {t['samples']:8d} {t['samples_per_s']:10.0f} "
                         f"{t['samples_per_s'] / base:6.2f}x {t['wall_s']:8.1f}")
    print("\n".join(lines))
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "card.json"), "w") as fh:
        json.dump({"feeds": feeds, "training": training, "columns": columns}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
