"""Every commit window of every job survives SIGKILL.

On a tiny generated store, each job (`interest ingest`, `sessionize`, `featurize --no-embeddings`,
`score` with baselines) runs once, in the test process on the session's warm JVM, with the commit
hook in record mode
(``INTEREST_COMMIT_LOG``, interest_lib/storage/faults.py): that lists the commit boundaries the
job crosses, found by hooking the commit, not by timing, and (``INTEREST_COMMIT_SNAPSHOTS``)
copies the warehouse at each boundary: the files a SIGKILL there leaves on disk. For each
boundary the job is rerun without the hook on that state and every table must then hold exactly
the rows of the uninterrupted run (compared Spark-free, as sorted multisets of rows, so a
duplicate or a lost row fails; ``*_at`` wall-clock timestamps are left out).

One boundary per job (the middle one) is also killed for real: the job is started as a
subprocess with ``INTEREST_KILL_AT`` set to it, must die by SIGKILL there, must leave the same
files (per folder) and table contents as the snapshot of that boundary, and is rerun and
compared like the others. ``INTEREST_KILL_REAL=all`` kills for real at every boundary instead of
using snapshots (a killed process per boundary, as before snapshots: about twice the time).

Boundaries tried by default: right after every commit, and right before each job's first commit.
A kill right before commit n leaves the tables as a kill right after commit n-1 does (plus files
moved into the table folder that no log entry names), so these cover every table state a kill can
leave; ``INTEREST_KILL_EVERY_PHASE=1`` also kills right before every commit.

What keeps it short: the raw store comes from the session's cache of generated stores
(tests/stores.py); the kill states come from one recorded run per job (snapshots, recorded in the test
process) instead of a JVM per boundary; the rerun calls the same entry point (``interest_lib.cli.main``) in the test
process, on the session's warm JVM — recovery is the job's code reading what the killed process
left on disk, which a fresh JVM does not change (``INTEREST_KILL_RERUN=subprocess`` reruns in a
fresh process); the real kill runs while the snapshots are rerun; and the subprocesses' JVMs run
without the C2 compiler and with the serial collector.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from interest_lib.storage.arrow_snapshot import read_snapshot
from interest_lib.storage.faults import KILL_ENV, LOG_ENV, SNAPSHOT_ENV, SNAPSHOT_OF_ENV
from tests.jvm import write_conf_file

pytestmark = pytest.mark.integration
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The smallest store that still puts rows in every table these jobs write.
SETTINGS = ["generate.users=40", "generate.days=42", "generate.mean_events_per_user=40",
            "generate.items_per_category=3", "migration.min_group_size=2",
            "score.migration=markov", "score.evolution=persistence",
            "spark.shuffle_partitions=2", "spark.master=local[2]",
            # the recorded run and the reruns share the test session (which has the Delta jars,
            # so `auto` would pick delta-spark there); the killed process has none: one engine
            "storage.engine=delta-rs"]
JOBS = [("ingest", []), ("sessionize", []), ("featurize", ["--no-embeddings"]), ("score", [])]
# On a store this small every flow cell is under migration.min_group_size, so the table stays
# empty (its commit is still crossed, killed at and compared).
MAY_BE_EMPTY = {"gold.migration_flows"}
IGNORED_SUFFIX = "_at"  # ingested_at, scored_at, ...: wall-clock times of the run
RERUN_IN_PROCESS = os.environ.get("INTEREST_KILL_RERUN", "in-process") != "subprocess"
KILL_ALL_FOR_REAL = os.environ.get("INTEREST_KILL_REAL") == "all"
HOOK_ENVS = (KILL_ENV, LOG_ENV, SNAPSHOT_ENV, SNAPSHOT_OF_ENV)


def _settings(root: str, warehouse: str) -> list[str]:
    return [f"storage.warehouse={warehouse}", f"storage.raw_dir={root}/raw", f"train.store={root}/runs", *SETTINGS]


def _argv(root: str, warehouse: str, command: str, extra: list[str]) -> list[str]:
    return [command, *extra, *[x for s in _settings(root, warehouse) for x in ("--set", s)]]


def _interest(root: str, warehouse: str, command: str, extra: list[str], env_extra: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in HOOK_ENVS}
    env.update(env_extra, PYTHONPATH=REPO, PYSPARK_PYTHON=sys.executable)
    conf_file = os.path.join(root, "test-spark.yml")
    if not os.path.exists(conf_file):
        write_conf_file(conf_file)
    cmd = [sys.executable, "-m", "interest_lib.cli", *_argv(root, warehouse, command, extra), "--conf-file", conf_file]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=root)


def _rerun(spark, root: str, warehouse: str, command: str, extra: list[str], hook: dict | None = None) -> str:
    """Rerun the job without the hook (or record it with ``hook``, the hook's environment);
    return "" when it succeeded, else what went wrong."""
    if not RERUN_IN_PROCESS:
        proc = _interest(root, warehouse, command, extra, hook or {})
        return "" if proc.returncode == 0 else f"rerun exited {proc.returncode}: {proc.stderr[-1500:]}"
    from interest_lib.cli import main
    from interest_lib.storage import faults

    assert not any(os.environ.get(k) for k in HOOK_ENVS)
    # cli.main applies this run's SQL settings to the shared session: put the session's back.
    keys = ("spark.sql.shuffle.partitions", "spark.sql.execution.arrow.maxRecordsPerBatch")
    saved = {k: spark.conf.get(k) for k in keys}
    os.environ.update(hook or {})
    faults.reset_counts()
    try:
        code = main(_argv(root, warehouse, command, extra))
        return "" if code == 0 else f"rerun returned {code}"
    except BaseException as exc:  # noqa: BLE001  (SystemExit from a CLI error included)
        if isinstance(exc, KeyboardInterrupt):
            raise
        return "rerun raised: " + "".join(traceback.format_exception(exc))[-3000:]
    finally:
        for k in hook or {}:
            os.environ.pop(k, None)
        for k, v in saved.items():
            spark.conf.set(k, v)


def _tables(warehouse: str) -> list[str]:
    """``layer.table`` of every Delta table under the warehouse."""
    found = []
    for layer in sorted(os.listdir(warehouse)):
        if layer.startswith(("_", ".")) or not os.path.isdir(os.path.join(warehouse, layer)):
            continue
        for table in sorted(os.listdir(os.path.join(warehouse, layer))):
            if os.path.isdir(os.path.join(warehouse, layer, table, "_delta_log")):
                found.append(f"{layer}.{table}")
    return found


def _plain(value):
    if isinstance(value, float):
        return float(f"{value:.10g}")  # summation order may differ in the last bits
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _contents(warehouse: str) -> dict[str, list[str]]:
    """Every table's rows as a sorted list of canonical JSON lines (a multiset)."""
    out = {}
    for name in _tables(warehouse):
        table = read_snapshot(os.path.join(warehouse, *name.split(".")))
        keep = [c for c in table.column_names if not c.endswith(IGNORED_SUFFIX)]
        rows = table.select(keep).to_pylist()
        out[name] = sorted(json.dumps(_plain(r), sort_keys=True, default=str) for r in rows)
    return out


def _diff(clean: dict, got: dict) -> list[str]:
    problems = []
    for name in sorted(set(clean) | set(got)):
        a, b = Counter(clean.get(name, [])), Counter(got.get(name, []))
        if a != b:
            lost, extra = sum((a - b).values()), sum((b - a).values())
            problems.append(f"{name}: {lost} rows lost, {extra} rows extra (of {sum(a.values())})")
    return problems


def _files_per_folder(warehouse: str) -> Counter:
    """Files in each folder under the warehouse. Data file names are random, their number is
    not; a staging folder's name is random too (``_staging/<host>_<pid>-<uuid>``)."""
    counts: Counter = Counter()
    for folder, _, files in os.walk(warehouse):
        if files:
            counts[re.sub(r"_staging/[^/]+", "_staging/*", os.path.relpath(folder, warehouse))] += len(files)
    return counts


def _boundaries(log_path: str) -> list[str]:
    with open(log_path) as fh:
        events = [json.loads(line) for line in fh]
    every = os.environ.get("INTEREST_KILL_EVERY_PHASE") == "1"
    chosen = []
    for i, e in enumerate(events):
        if e["phase"] == "after" or every or i == 0:
            chosen.append(f"{e['phase']}:{e['table']}:{e['n']}")
    return chosen


class CleanRuns:
    """The uninterrupted runs, made on demand in job order: per job, a copy of the warehouse
    before it, the boundaries it crossed, the warehouse at each boundary (``snapshots/<boundary>``)
    and the tables after it."""

    def __init__(self, spark, root: str):
        self.spark, self.root = spark, root
        self.warehouse = os.path.join(root, "warehouse")  # holds the generated store's planted truth
        self.done: dict[str, tuple[str, list[str], str, dict]] = {}

    def upto(self, job: str) -> tuple[str, list[str], str, dict]:
        """Run the clean jobs up to and including ``job``; return its (before, boundaries,
        snapshots folder, tables)."""
        for name, extra in JOBS:
            if name not in self.done:
                before = os.path.join(self.root, f"before-{name}")
                shutil.copytree(self.warehouse, before)
                log_path = os.path.join(self.root, f"commits-{name}.jsonl")
                snapshots = os.path.join(self.root, f"snapshots-{name}")
                os.makedirs(snapshots)
                hook = {LOG_ENV: log_path, SNAPSHOT_ENV: snapshots, SNAPSHOT_OF_ENV: self.warehouse}
                problem = _rerun(self.spark, self.root, self.warehouse, name, extra, hook)
                assert not problem, f"clean {name}: {problem}"
                self.done[name] = (before, _boundaries(log_path), snapshots, _contents(self.warehouse))
            if name == job:
                return self.done[name]
        raise KeyError(job)


@pytest.fixture(scope="module")
def clean_runs(tmp_path_factory, spark, generated_stores):
    """The tiny raw store (from the session's cache); clean job runs follow as the tests ask."""
    root = tmp_path_factory.mktemp("kills")
    generated_stores.copy_to(SETTINGS, root)
    return CleanRuns(spark, str(root))


@pytest.mark.timeout(2400)  # a rerun per commit boundary, and a killed subprocess per job
@pytest.mark.parametrize("job, extra", JOBS, ids=[j for j, _ in JOBS])
def test_job_killed_at_each_commit_boundary_recovers_on_rerun(clean_runs, spark, job, extra):
    root = clean_runs.root
    before, boundaries, snapshots, clean = clean_runs.upto(job)
    assert boundaries, f"{job} crossed no commit boundary"
    empty = [name for name, rows in clean.items() if not rows and name not in MAY_BE_EMPTY]
    assert not empty, f"the store is too small: empty tables after {job}: {empty}"
    for_real = set(boundaries) if KILL_ALL_FOR_REAL else {boundaries[len(boundaries) // 2]}

    def killed_run(i: int, boundary: str) -> tuple[str, subprocess.CompletedProcess]:
        warehouse = os.path.join(root, f"{job}-kill-{i}")
        shutil.copytree(before, warehouse)
        return warehouse, _interest(root, warehouse, job, extra, {KILL_ENV: boundary})

    failures = []

    def recovers(boundary: str, warehouse: str) -> None:
        problem = _rerun(spark, root, warehouse, job, extra)
        problems = [problem] if problem else _diff(clean, _contents(warehouse))
        if problems:
            failures.append(f"{boundary}: " + "; ".join(problems))
        shutil.rmtree(warehouse, ignore_errors=True)

    with ThreadPoolExecutor(max_workers=1) as pool:  # the real kills run while snapshots are rerun
        kills = {b: pool.submit(killed_run, i, b) for i, b in enumerate(boundaries) if b in for_real}
        for i, boundary in enumerate(boundaries):
            if boundary in kills:
                continue
            warehouse = os.path.join(root, f"{job}-snapshot-{i}")
            shutil.copytree(os.path.join(snapshots, boundary), warehouse)
            recovers(boundary, warehouse)
        for boundary, future in kills.items():
            warehouse, killed = future.result()
            if killed.returncode != -signal.SIGKILL:
                failures.append(f"{boundary}: exited {killed.returncode}, not by SIGKILL: {killed.stderr[-1500:]}")
                continue
            # the snapshot of this boundary is what the kill left: same files per folder, same rows
            snapshot = os.path.join(snapshots, boundary)
            killed_files, snapshot_files = _files_per_folder(warehouse), _files_per_folder(snapshot)
            if killed_files != snapshot_files or _contents(warehouse) != _contents(snapshot):
                differ = {k: (killed_files[k], snapshot_files[k]) for k in killed_files | snapshot_files
                          if killed_files[k] != snapshot_files[k]}
                failures.append(f"{boundary}: the real kill and the snapshot differ (files per folder, "
                                f"killed vs snapshot: {differ}) or in their rows")
            recovers(boundary, warehouse)
    assert not failures, f"{job}: {len(failures)} of {len(boundaries)} kill points did not recover:\n" + "\n".join(failures)
