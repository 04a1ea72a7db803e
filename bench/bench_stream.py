"""Benchmark: end-to-end latency of ``interest stream``, from a file landing to its users' updated
scores, at sustained rates, and the highest rate the machine sustains without growing lag.

    nice python bench/bench_stream.py [--rates 200,2000] [--seconds 90] [--users 200] [--root /tmp/bench-stream]
                                      [--warmup SECONDS] [--set KEY=VALUE ...]

Setup (once per root): a generated store of ``--users`` users through ingest, sessionize and
featurize (no embeddings), scored with baselines (``score.migration=markov``,
``score.evolution=persistence``: the same predictor interface a trained model uses, without
training). Then one long-running query (``processing_time`` trigger, every micro-batch as soon
as the previous ends) runs in this process while the main thread lands one JSON-lines file per
second holding ``rate`` events of random known users stamped with the current time, for
``--seconds`` per rate, rates in increasing order. ``--warmup S`` first lands ``S`` seconds of
files at the first rate and waits for them, left out of the table: the latency of a query that
has been running (its first micro-batches also warm up the JVM and the Python workers).

Latency of a file = the time its micro-batch finished (scores of its users committed to
gold.user_interest_scores) - the file's modification time. A rate is *sustained* when every file
of the phase was processed within ``--drain`` seconds after the phase, the micro-batches holding
its files took at most the phase's length plus two batch durations in all (what back-to-back
batches that keep pace span: the first file waits up to one batch for its micro-batch, the batch
holding the last file starts up to one batch after it lands), and the p95 latency of the last third
of its files is at most 1.5x that of the first third (lag not growing). Prints a
table per rate and the machine's load average (other processes share the cores).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))


def _setup(root: str, users: int) -> list[str]:
    """The featurized warehouse (built once per root); returns settings for --set."""
    from interest_lib.cli import main

    settings = [f"storage.warehouse={root}/warehouse", f"storage.raw_dir={root}/raw", f"train.store={root}/runs",
                f"generate.users={users}", "generate.days=42", "generate.mean_events_per_user=40",
                "score.migration=markov", "score.evolution=persistence", "spark.shuffle_partitions=4",
                f"stream.landing={root}/landing"]
    args = [x for s in settings for x in ("--set", s)]
    if not os.path.exists(os.path.join(root, "warehouse", "ref", "vocab")):
        for job in (["generate"], ["ingest"], ["sessionize"], ["featurize", "--no-embeddings"]):
            assert main([*job, *args]) == 0, job
    return settings


def _raw_users(root: str) -> list[str]:
    import glob

    found = set()
    for path in glob.glob(os.path.join(root, "raw", "events", "**", "*.json*"), recursive=True)[:20]:
        with open(path) as fh:
            for line in fh:
                try:
                    u = json.loads(line).get("user_id")
                except (ValueError, AttributeError):
                    continue
                if isinstance(u, str) and u.strip() and u.isprintable() and u == u.strip():
                    found.add(u)
    return sorted(found)


def _land(folder: str, rate: int, users: list[str], rng: random.Random) -> str:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    lines = [json.dumps({"event_id": uuid.uuid4().hex, "user_id": rng.choice(users), "item_id": f"b{rng.randrange(50)}",
                         "category_id": f"bench-{rng.randrange(8)}", "category_path": "bench/x",
                         "event_type": rng.choice(["view", "click", "cart", "purchase"]), "event_time": stamp + "Z"})
             for _ in range(rate)]
    tmp = os.path.join(folder, f".tmp-{uuid.uuid4().hex}")
    with open(tmp, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    final = os.path.join(folder, f"{int(now * 1000)}-{uuid.uuid4().hex[:6]}.jsonl")
    os.rename(tmp, final)  # atomic: the file source never sees a half-written file
    return final


def _pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="200,2000", help="events per second, comma-separated, ascending")
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--root", default="/tmp/bench-stream")
    parser.add_argument("--warmup", type=float, default=0,
                        help="seconds of files at the first rate before the measured phases, left out of "
                             "the table (a long-running query's steady state; 0 = measure from the start)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a configuration override for the stream's run (repeatable)")
    parser.add_argument("--drain", type=float, default=900,
                        help="seconds to wait after a phase for its files to be processed")
    args = parser.parse_args()

    from interest_lib.conf import load_config
    from interest_lib.spark import get_spark
    from interest_lib.storage import Tables
    from interest_lib.streaming.job import run_stream

    from interest_lib.logs import setup_logging

    setup_logging("INFO")  # the per-micro-batch and progress lines
    os.makedirs(args.root, exist_ok=True)
    settings = _setup(args.root, args.users)
    run = time.strftime("%Y%m%d%H%M%S")  # a fresh query (own checkpoint and landing folder) per run
    conf = load_config(overrides=[*settings, "stream.max_files_per_trigger=1000", f"stream.query_name=bench-{run}",
                                  f"stream.landing={args.root}/landing-{run}", *args.set])
    spark = get_spark(conf)
    tables = Tables(spark, conf.storage)
    users = _raw_users(args.root)
    landing = conf.stream.landing
    os.makedirs(landing, exist_ok=True)
    done: dict[str, float] = {}
    batches = []

    def on_batch(report):
        batches.append(report)
        for f in report.files:
            done[f.replace("file://", "")] = report.finished_at

    stop = threading.Event()
    failure = []

    def stream():
        try:
            run_stream(spark, conf, tables, trigger="processing_time", timeout_seconds=0, on_batch=on_batch)
        except Exception as exc:  # reported below
            failure.append(exc)

    # The query stops when this process ends; run_stream polls, so a timeout ends it cleanly.
    conf.stream.timeout_seconds = (len(args.rates.split(",")) * (args.seconds + args.drain)
                                   + (args.warmup + args.drain if args.warmup > 0 else 0) + 120)
    thread = threading.Thread(target=stream, daemon=True)
    thread.start()
    time.sleep(20)  # query start
    rng = random.Random(5)
    rates = [int(r) for r in args.rates.split(",")]

    def land_for(rate: int, seconds: float) -> dict:
        """One file of ``rate`` events per second for ``seconds``, then wait until all are done."""
        landed = {}
        t0 = time.time()
        while time.time() - t0 < seconds and not failure:
            tick = time.time()
            path = _land(landing, rate, users, rng)
            landed[path] = os.path.getmtime(path)
            time.sleep(max(0.0, 1.0 - (time.time() - tick)))
        drain_until = time.time() + args.drain
        while not all(p in done for p in landed) and time.time() < drain_until and not failure:
            time.sleep(1)
        return landed

    if args.warmup > 0:  # the query's first micro-batches (JVM and Python workers warming up)
        warm = land_for(rates[0], args.warmup)
        print(f"warm-up: {len(warm)} files at {rates[0]:,} events/s, processed and left out of the table")
    rows = []
    for rate in rates:
        landed = land_for(rate, args.seconds)
        lat = [done[p] - m for p, m in landed.items() if p in done]
        ordered = [done[p] - landed[p] for p in sorted(landed, key=landed.get) if p in done]
        third = max(1, len(ordered) // 3)
        first, last = _pct(ordered[:third], 0.95), _pct(ordered[-third:], 0.95)
        phase = [b for b in batches if any(f.replace("file://", "") in landed for f in b.files)]
        busy = sum(b.finished_at - b.started_at for b in phase)
        mean_batch = busy / max(1, len(phase))
        # Kept up: every file processed, the lag of the last files not above the first's, and the
        # micro-batches holding the phase's files took no longer than the phase plus two batches.
        # Back-to-back batches of d seconds that keep pace span at most that: the first file waits
        # up to d for its batch, and the batch holding the last file starts up to d after it lands.
        sustained = (len(lat) == len(landed) and busy <= args.seconds + 2 * mean_batch
                     and last <= 1.5 * first)
        rows.append((rate, len(landed), len(lat), _pct(lat, 0.5), _pct(lat, 0.95), first, last,
                     mean_batch, len(phase), sustained))
    stop.set()
    load = os.getloadavg()
    print(f"\ninterest stream, file source -> gold.user_interest_scores; {args.users} users, "
          f"{os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print(f"{'events/s':>9} {'files':>6} {'done':>5} {'p50 s':>7} {'p95 s':>7} {'p95 1st⅓':>9} "
          f"{'p95 last⅓':>10} {'batch s':>8} {'batches':>8} sustained")
    for r in rows:
        print(f"{r[0]:>9,} {r[1]:>6} {r[2]:>5} {r[3]:>7.1f} {r[4]:>7.1f} {r[5]:>9.1f} {r[6]:>10.1f} {r[7]:>8.1f} "
              f"{r[8]:>8} {'yes' if r[9] else 'no'}")
    ok = [r[0] for r in rows if r[9]]
    print(f"highest sustained rate tried: {max(ok) if ok else 'none'} events/s; target p95 <= 30 s at 2,000 events/s: "
          + ("MET" if any(r[0] >= 2000 and r[4] <= 30 for r in rows) else "NOT MET"))
    if failure:
        print(f"stream failed: {failure[0]}")
    os._exit(0)  # the query thread is a daemon; end the JVM with the process


if __name__ == "__main__":
    main()
