"""Benchmark: generate -> ingest -> sessionize in Spark vs the same work in DuckDB.

    python bench/bench_foundation.py [--sizes 1000000,10000000] [--workdir /tmp/ie-bench]

For each size: the Spark stages (local[*], this machine) and the DuckDB baseline on the same raw
files, each in its own process. Prints events/s per stage, peak memory, the Spark/DuckDB time
ratio for ingest + sessionize (target <= 3), and how time grows from the smallest size to the
largest (target: no worse than linear).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MEAN_EVENTS = 125


def _run(cmd: list[str]) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
        raise SystemExit(f"benchmark step failed: {' '.join(cmd)}")
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ") or l.startswith("{")][-1]
    return json.loads(line.removeprefix("RESULT "))


def bench_size(events: int, workdir: str, threads: int) -> dict:
    """Spark stages and the DuckDB baseline on about ``events`` generated events."""
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    users = max(1, events // MEAN_EVENTS)
    spark = _run([sys.executable, os.path.join(HERE, "spark_stages.py"), workdir, str(users), str(MEAN_EVENTS)])
    duck = _run([sys.executable, os.path.join(HERE, "duckdb_baseline.py"),
                 os.path.join(workdir, "raw", "events"), os.path.join(workdir, "duckdb"), str(threads)])
    shutil.rmtree(workdir, ignore_errors=True)
    return {"target_events": events, "spark": spark, "duckdb": duck}


def render(results: list[dict]) -> str:
    """The benchmark table."""
    rows = ["| events in | stage | Spark s | Spark events/s | Spark peak MB | DuckDB s | DuckDB events/s | Spark/DuckDB |",
            "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        s, d = r["spark"], r["duckdb"]
        n = s["rows_in"]
        rows.append(f"| {n:,} | generate | {s['generate_s']:.1f} | {n / s['generate_s']:,.0f} | {s['generate_peak_mb']:,.0f} | – | – | – |")
        for stage in ("ingest", "sessionize"):
            rows.append(
                f"| {n:,} | {stage} | {s[stage + '_s']:.1f} | {n / s[stage + '_s']:,.0f} | {s[stage + '_peak_mb']:,.0f} "
                f"| {d[stage + '_s']:.1f} | {n / d[stage + '_s']:,.0f} | {s[stage + '_s'] / d[stage + '_s']:.2f}× |")
        spark_total = s["ingest_s"] + s["sessionize_s"]
        duck_total = d["ingest_s"] + d["sessionize_s"]
        rows.append(f"| {n:,} | **ingest+sessionize** | {spark_total:.1f} | {n / spark_total:,.0f} | "
                    f"{max(s['ingest_peak_mb'], s['sessionize_peak_mb']):,.0f} | {duck_total:.1f} | {n / duck_total:,.0f} | "
                    f"**{spark_total / duck_total:.2f}×** (DuckDB peak {d['peak_rss_mb']:,.0f} MB) |")
    if len(results) > 1:
        a, b = results[0]["spark"], results[-1]["spark"]
        ta, tb = a["ingest_s"] + a["sessionize_s"], b["ingest_s"] + b["sessionize_s"]
        growth = tb / ta
        size = b["rows_in"] / a["rows_in"]
        rows.append("")
        rows.append(f"Scaling {a['rows_in']:,} -> {b['rows_in']:,} events ({size:.1f}× data): "
                    f"ingest+sessionize time {growth:.2f}× ({'sub-linear' if growth <= size else 'super-linear'}).")
    return "\n".join(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated event counts")
    parser.add_argument("--workdir", default="/tmp/interest-bench")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="DuckDB threads (= Spark cores)")
    args = parser.parse_args(argv)
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        print(f"benchmarking ~{size:,} events ...", file=sys.stderr, flush=True)
        results.append(bench_size(size, args.workdir, args.threads))
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "foundation.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    print(render(results))


if __name__ == "__main__":
    main()
