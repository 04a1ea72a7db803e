"""Every commit window of every job survives SIGKILL.

On a tiny generated store, each job (`interest ingest`, `sessionize`, `featurize --no-embeddings`,
`score` with baselines) runs once as a real subprocess with the commit hook in record mode
(``INTEREST_COMMIT_LOG``, interest_lib/storage/faults.py): that lists the commit boundaries the
job crosses, found by hooking the commit, not by timing. Then, for each boundary, from a copy of
the warehouse as it was before the job, the job is started with ``INTEREST_KILL_AT`` set to that
boundary, must die by SIGKILL there, is rerun without the hook, and every table must then hold
exactly the rows of the uninterrupted run (compared Spark-free, as sorted multisets of rows, so a
duplicate or a lost row fails; ``*_at`` wall-clock timestamps are left out).

Boundaries tried by default: right after every commit, and right before each job's first commit.
A kill right before commit n leaves the tables as a kill right after commit n-1 does (plus files
moved into the table folder that no log entry names), so these cover every table state a kill can
leave; ``INTEREST_KILL_EVERY_PHASE=1`` also kills right before every commit.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter

import pytest

from interest_lib.storage.arrow_snapshot import read_snapshot
from interest_lib.storage.faults import KILL_ENV, LOG_ENV

pytestmark = pytest.mark.integration
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The smallest store that still puts rows in every table these jobs write.
SETTINGS = ["generate.users=40", "generate.days=42", "generate.mean_events_per_user=40",
            "generate.items_per_category=3", "migration.min_group_size=2",
            "score.migration=markov", "score.evolution=persistence",
            "spark.shuffle_partitions=2", "spark.master=local[2]"]
JOBS = [("ingest", []), ("sessionize", []), ("featurize", ["--no-embeddings"]), ("score", [])]
# On a store this small every flow cell is under migration.min_group_size, so the table stays
# empty (its commit is still crossed, killed at and compared).
MAY_BE_EMPTY = {"gold.migration_flows"}
IGNORED_SUFFIX = "_at"  # ingested_at, scored_at, ...: wall-clock times of the run


def _interest(root: str, warehouse: str, command: str, extra: list[str], env_extra: dict) -> subprocess.CompletedProcess:
    settings = [f"storage.warehouse={warehouse}", f"storage.raw_dir={root}/raw",
                f"train.store={root}/runs", *SETTINGS]
    env = {k: v for k, v in os.environ.items() if k not in (KILL_ENV, LOG_ENV)}
    env.update(env_extra, PYTHONPATH=REPO, PYSPARK_PYTHON=sys.executable)
    cmd = [sys.executable, "-m", "interest_lib.cli", command, *extra,
           *[x for s in settings for x in ("--set", s)]]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=root)


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    assert proc.returncode == 0, f"{what} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"


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
    before it, the boundaries it crossed, and the tables after it."""

    def __init__(self, root: str):
        self.root = root
        self.warehouse = os.path.join(root, "warehouse")
        self.done: dict[str, tuple[str, list[str], dict]] = {}
        _check(_interest(root, self.warehouse, "generate", [], {}), "generate")

    def upto(self, job: str) -> tuple[str, list[str], dict]:
        """Run the clean jobs up to and including ``job``; return its (before, boundaries, tables)."""
        for name, extra in JOBS:
            if name not in self.done:
                before = os.path.join(self.root, f"before-{name}")
                shutil.copytree(self.warehouse, before)
                log_path = os.path.join(self.root, f"commits-{name}.jsonl")
                _check(_interest(self.root, self.warehouse, name, extra, {LOG_ENV: log_path}), f"clean {name}")
                self.done[name] = (before, _boundaries(log_path), _contents(self.warehouse))
            if name == job:
                return self.done[name]
        raise KeyError(job)


@pytest.fixture(scope="module")
def clean_runs(tmp_path_factory):
    """Generate the tiny raw store once; clean job runs follow as the tests ask for them."""
    return CleanRuns(str(tmp_path_factory.mktemp("kills")))


@pytest.mark.timeout(2400)  # a killed run and a rerun (two JVM starts) per commit boundary
@pytest.mark.parametrize("job, extra", JOBS, ids=[j for j, _ in JOBS])
def test_job_killed_at_each_commit_boundary_recovers_on_rerun(clean_runs, job, extra):
    root = clean_runs.root
    before, boundaries, clean = clean_runs.upto(job)
    assert boundaries, f"{job} crossed no commit boundary"
    empty = [name for name, rows in clean.items() if not rows and name not in MAY_BE_EMPTY]
    assert not empty, f"the store is too small: empty tables after {job}: {empty}"
    failures = []
    for i, boundary in enumerate(boundaries):
        warehouse = os.path.join(root, f"{job}-kill-{i}")
        shutil.copytree(before, warehouse)
        killed = _interest(root, warehouse, job, extra, {KILL_ENV: boundary})
        if killed.returncode != -signal.SIGKILL:
            failures.append(f"{boundary}: exited {killed.returncode}, not by SIGKILL: {killed.stderr[-1500:]}")
            continue
        rerun = _interest(root, warehouse, job, extra, {})
        if rerun.returncode != 0:
            failures.append(f"{boundary}: rerun exited {rerun.returncode}: {rerun.stderr[-1500:]}")
            continue
        problems = _diff(clean, _contents(warehouse))
        if problems:
            failures.append(f"{boundary}: " + "; ".join(problems))
        shutil.rmtree(warehouse, ignore_errors=True)
    assert not failures, f"{job}: {len(failures)} of {len(boundaries)} kill points did not recover:\n" + "\n".join(failures)
