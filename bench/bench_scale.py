"""Benchmark: a cost model of the pipeline from Spark's own metrics, and the DuckDB bar.

    python bench/bench_scale.py [--sizes 1000000,3000000,10000000] [--workdir /tmp/ie-scale]
                                [--duckdb] [--skew] [--driver-memory 3g] [--keep]

For each size (``generate.users`` = size / 120) one process generates the store, then runs
ingest, sessionize, featurize (``--no-embeddings``: the text model is a fixed cost measured by
bench_featurize) and score (with the markov / persistence baselines, so no training is needed)
in one Spark session with its UI's REST API on, and reads per stage, from Spark's metrics: wall
time, core-seconds (the tasks' executor run time) per million events, CPU seconds, shuffle bytes
read and written, peak execution memory of a task, the files the stage added to the warehouse,
and the longest task against the median task of each Spark stage (the skew check: the worst
ratio over the Spark stages whose median task takes >= 50 ms). Featurize's own sub-stage times
(profiles, migrations, stages, sequences) come from its log.

Then per stage it fits ``seconds = a + b * events`` (least squares over the sizes) and prints
a, b and the fit's largest relative error on the measured points. ``--duckdb`` also runs
bench/duckdb_baseline.py (ingest + sessionize + the profile build of featurize) on the same raw
files at each size and prints Spark / DuckDB. ``--skew`` adds the generator's bot (1M events)
and viral item (20 %). Results also go to ``<workdir>/scale.json``.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

MEAN_EVENTS = 120
STAGES = ("ingest", "sessionize", "featurize", "score")


def _get(base: str, path: str):
    with urllib.request.urlopen(base + path, timeout=60) as resp:
        return json.loads(resp.read())


def stage_metrics(base: str, app: str, group: str) -> dict:
    """Spark's metrics of every stage of the jobs in job group ``group``."""
    jobs = [j for j in _get(base, f"/api/v1/applications/{app}/jobs") if j.get("jobGroup") == group]
    stage_ids = sorted({s for j in jobs for s in j["stageIds"]})
    step_of = {s: j.get("description", "") for j in jobs for s in j["stageIds"]}  # StageTimer's labels
    out = {"spark_jobs": len(jobs), "spark_stages": 0, "tasks": 0, "core_s": 0.0, "cpu_s": 0.0,
           "shuffle_read_mb": 0.0, "shuffle_write_mb": 0.0, "peak_task_mem_mb": 0.0, "input_mb": 0.0,
           "output_mb": 0.0, "task_max_over_median": 1.0, "skew_stage": None}
    for sid in stage_ids:
        for att in _get(base, f"/api/v1/applications/{app}/stages/{sid}"):
            if att["status"] not in ("COMPLETE",):
                continue
            out["spark_stages"] += 1
            out["tasks"] += att["numCompleteTasks"]
            out["core_s"] += att["executorRunTime"] / 1000
            out["cpu_s"] += att["executorCpuTime"] / 1e9
            out["shuffle_read_mb"] += (att["shuffleRemoteBytesRead"] + att["shuffleLocalBytesRead"]) / 2**20
            out["shuffle_write_mb"] += att["shuffleWriteBytes"] / 2**20
            out["input_mb"] += att["inputBytes"] / 2**20
            out["output_mb"] += att["outputBytes"] / 2**20
            if att["numCompleteTasks"] >= 2:
                q = _get(base, f"/api/v1/applications/{app}/stages/{sid}/{att['attemptId']}"
                               "/taskSummary?quantiles=0.5,1.0")
                med, top = q["duration"]
                peak = q.get("peakExecutionMemory", [0, 0])[1]
                out["peak_task_mem_mb"] = max(out["peak_task_mem_mb"], peak / 2**20)
                if med >= 50 and top / med > out["task_max_over_median"]:
                    out["task_max_over_median"] = round(top / med, 2)
                    out["skew_stage"] = (f"{sid}: {att['name'][:60]} ({att['numCompleteTasks']} tasks, median {med:.0f} ms, "
                                         f"max {top:.0f} ms) in [{step_of.get(sid) or '?'}]; {longest_task(base, app, sid, att, q)}")
    return out


def longest_task(base: str, app: str, sid: int, att: dict, q: dict) -> str:
    """What the stage's longest task read (records) against the median task (``q``: the stage's
    task summary, quantile 0.5 first), and its GC time: whether a long task had more data (skew)
    or only took longer."""
    path = f"/api/v1/applications/{app}/stages/{sid}/{att['attemptId']}"
    longest = _get(base, path + "/taskList?sortBy=-runtime&length=1")[0]["taskMetrics"]
    records = longest["inputMetrics"]["recordsRead"] + longest["shuffleReadMetrics"]["recordsRead"]
    median = q["inputMetrics"]["recordsRead"][0] + q["shuffleReadMetrics"]["readRecords"][0]
    return f"longest task: {records:,} records in vs median {median:,.0f}, GC {longest['jvmGcTime']} ms"


def _files(warehouse: str) -> int:
    return len(glob.glob(os.path.join(warehouse, "**", "*.parquet"), recursive=True))


class _StageLog(logging.Handler):
    """Collects ``stage NAME: done in S s`` lines of the jobs' StageTimers."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.times: dict = {}

    def emit(self, record):
        m = re.match(r"stage (.+?): done in ([\d.]+) s", record.getMessage())
        if m:
            self.times[f"{record.name.split('.')[1]}.{m.group(1)}"] = float(m.group(2))


def one_size(workdir: str, users: int, skew: bool, driver_memory: str) -> dict:
    """Generate, then time each stage in one Spark session; return the per-stage metrics."""
    from interest_lib.conf import load_config
    from interest_lib.features.job import run_featurize
    from interest_lib.generate.job import run_generate
    from interest_lib.ingest import run_ingest
    from interest_lib.logs import setup_logging
    from interest_lib.scoring.job import run_score
    from interest_lib.sessions import run_sessionize
    from interest_lib.spark import get_spark
    from interest_lib.storage import Tables
    from spark_stages import PeakMemory

    setup_logging("WARNING")
    timer_log = _StageLog()
    logging.getLogger("interest_lib").addHandler(timer_log)
    for name in ("interest_lib.features.job", "interest_lib.ingest.job", "interest_lib.sessions.job"):
        logging.getLogger(name).setLevel(logging.INFO)
    warehouse = f"{workdir}/warehouse"
    overrides = [f"storage.warehouse={warehouse}", f"storage.raw_dir={workdir}/raw", f"train.store={workdir}/runs",
                 f"generate.users={users}", f"generate.mean_events_per_user={MEAN_EVENTS}",
                 f"spark.driver_memory={driver_memory}", "spark.ui_enabled=true",
                 "score.migration=markov", "score.evolution=persistence", "tracking.enabled=false"]
    if skew:
        overrides += ["generate.bot_events=1000000", "generate.viral_item_share=0.2"]
    conf = load_config(overrides=overrides)
    mem = PeakMemory().start()
    spark = get_spark(conf)
    sc = spark.sparkContext
    base, app = sc.uiWebUrl.rstrip("/"), sc.applicationId
    tables = Tables(spark, conf.storage)
    out = {"users": users, "cores": sc.defaultParallelism, "driver_memory": driver_memory, "skew": skew}
    steps = [("generate", lambda: run_generate(spark, conf, tables)),
             ("ingest", lambda: run_ingest(spark, conf, tables)),
             ("sessionize", lambda: run_sessionize(spark, conf, tables)),
             ("featurize", lambda: run_featurize(spark, conf, tables, embed=False)),
             ("score", lambda: run_score(spark, conf, tables))]
    for name, fn in steps:
        mem.reset()
        files = _files(warehouse)
        sc.setJobGroup(name, name)
        start = time.perf_counter()
        result = fn()
        wall = time.perf_counter() - start
        time.sleep(1.5)  # the UI's listener catches up with the last events
        row = {"wall_s": round(wall, 1), "peak_rss_mb": round(mem.peak / 2**20), "files_written": _files(warehouse) - files,
               **stage_metrics(base, app, name)}
        if name == "generate":
            out["events"] = result["events_written"]
        if name == "ingest":
            row.update(rows_in=result.rows_in, accepted=result.accepted, quarantined=result.quarantined,
                       heavy_users=result.heavy_users, heavy_items=result.heavy_items)
        out[name] = row
        print(f"[{out.get('events', 0):,} events] {name}: {wall:.1f} s", file=sys.stderr, flush=True)
    out["substages"] = timer_log.times
    mem.stop()
    spark.stop()
    return out


def fit(points: list[tuple[float, float]]) -> dict:
    """Least squares ``y = a + b x``; the largest relative error on the points."""
    n = len(points)
    if n < 2:
        return {}
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    a = my - b * mx
    err = max(abs(a + b * x - y) / y for x, y in points if y > 0)
    return {"a_s": a, "b_s_per_m": b * 1e6, "max_rel_err": err, "points": n}


def render(results: list[dict], duck: dict) -> str:
    lines = ["| events | stage | wall s | core-s / M events | CPU-s / M events | shuffle read MB | shuffle write MB | "
             "peak task mem MB | peak RSS MB | files written | max task / median |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        m = r["events"] / 1e6
        for stage in STAGES:
            s = r[stage]
            lines.append(f"| {r['events']:,} | {stage} | {s['wall_s']:.1f} | {s['core_s'] / m:.1f} | {s['cpu_s'] / m:.1f} | "
                         f"{s['shuffle_read_mb']:,.0f} | {s['shuffle_write_mb']:,.0f} | {s['peak_task_mem_mb']:,.0f} | "
                         f"{s['peak_rss_mb']:,} | {s['files_written']:,} | {s['task_max_over_median']:.2f} |")
    lines += ["", "Fitted cost per stage (least squares over the sizes above):", "",
              "| stage | a (fixed wall s) | b (wall s per M events) | max rel. error | core-s: a + b per M (error) | CPU-s: a + b per M (error) |",
              "|---|---:|---:|---:|---:|---:|"]
    for stage in STAGES:
        f = fit([(r["events"], r[stage]["wall_s"]) for r in results])
        c = fit([(r["events"], r[stage]["core_s"]) for r in results])
        u = fit([(r["events"], r[stage]["cpu_s"]) for r in results])
        if f:
            lines.append(f"| {stage} | {f['a_s']:.1f} | {f['b_s_per_m']:.1f} | {f['max_rel_err']:.1%} | "
                         f"{c['a_s']:.0f} + {c['b_s_per_m']:.1f} ({c['max_rel_err']:.1%}) | "
                         f"{u['a_s']:.0f} + {u['b_s_per_m']:.1f} ({u['max_rel_err']:.1%}) |")
    if duck:
        lines += ["", "Against DuckDB on the same raw files (same run):", "",
                  "| events | Spark ingest+sessionize+featurize s | of which featurize profiles s | DuckDB s (ingest, sessionize, profiles) | Spark / DuckDB (whole) | Spark / DuckDB (like for like) |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for r in results:
            d = duck.get(str(r["events"]))
            if not d:
                continue
            prof = r["substages"].get("features.profiles", 0.0)
            spark_all = r["ingest"]["wall_s"] + r["sessionize"]["wall_s"] + r["featurize"]["wall_s"]
            like = r["ingest"]["wall_s"] + r["sessionize"]["wall_s"] + prof
            d_all = d["ingest_s"] + d["sessionize_s"] + d["featurize_s"]
            lines.append(f"| {r['events']:,} | {spark_all:.1f} | {prof:.1f} | {d_all:.1f} ({d['ingest_s']:.1f}, "
                         f"{d['sessionize_s']:.1f}, {d['featurize_s']:.1f}) | **{spark_all / d_all:.2f}×** | {like / d_all:.2f}× |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,3000000,10000000")
    parser.add_argument("--workdir", default="/tmp/ie-scale")
    parser.add_argument("--duckdb", action="store_true", help="run the DuckDB baseline at each size")
    parser.add_argument("--skew", action="store_true", help="add the bot (1M events) and the viral item (20%%)")
    parser.add_argument("--driver-memory", default="3g")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--keep", action="store_true", help="keep each size's store")
    parser.add_argument("--render", metavar="SCALE_JSON", help="print the tables of a saved run")
    parser.add_argument("--one", nargs=2, metavar=("WORKDIR", "USERS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(one_size(args.one[0], int(args.one[1]), args.skew, args.driver_memory)))
        return
    if args.render:
        saved = json.load(open(args.render))
        print(render(saved["results"], saved["duckdb"]))
        return
    results, duck = [], {}
    for size in [int(s) for s in args.sizes.split(",")]:
        work = os.path.join(args.workdir, str(size))
        shutil.rmtree(work, ignore_errors=True)
        cmd = [sys.executable, __file__, "--one", work, str(max(1, size // MEAN_EVENTS)),
               "--driver-memory", args.driver_memory] + (["--skew"] if args.skew else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.path.join(HERE, "..")})
        if proc.returncode:
            sys.exit(proc.stderr[-4000:])
        print(proc.stderr[-2000:], file=sys.stderr)
        r = json.loads([line for line in proc.stdout.splitlines() if line.startswith("RESULT ")][-1][7:])
        results.append(r)
        with open(os.path.join(args.workdir, "scale.json"), "w") as fh:
            json.dump({"results": results, "duckdb": duck}, fh, indent=1)
        if args.duckdb:
            d = subprocess.run([sys.executable, os.path.join(HERE, "duckdb_baseline.py"), f"{work}/raw/events",
                                f"{work}/duckdb", str(args.threads), "--featurize"], capture_output=True, text=True)
            if d.returncode:
                print(f"DuckDB baseline failed at {size:,}: {d.stderr[-2000:]}", file=sys.stderr)
            else:
                duck[str(r["events"])] = json.loads(d.stdout.strip().splitlines()[-1])
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        with open(os.path.join(args.workdir, "scale.json"), "w") as fh:
            json.dump({"results": results, "duckdb": duck}, fh, indent=1)
    print(render(results, duck))


if __name__ == "__main__":
    main()
