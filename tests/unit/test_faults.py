"""The commit-boundary hook: records boundaries, SIGKILLs exactly at the one asked for, and does
nothing when unset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from interest_lib.storage import faults

pytestmark = pytest.mark.unit
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Three commits: a, b, a; prints each boundary it survived.
SCRIPT = """
from interest_lib.storage.faults import commit_boundary
for table in ("t.a", "t.b", "t.a"):
    for phase in ("before", "after"):
        commit_boundary(table, phase)
        print(phase, table, flush=True)
"""


# The same three commits, each writing a "data file" before its boundary and a "log entry" after.
WRITING = """
import os, sys
from interest_lib.storage.faults import commit_boundary
warehouse = sys.argv[1]
for i, table in enumerate(("t.a", "t.b", "t.a")):
    open(os.path.join(warehouse, f"data-{i}"), "w").close()
    commit_boundary(table, "before")
    open(os.path.join(warehouse, f"log-{i}"), "w").close()
    commit_boundary(table, "after")
"""
HOOK_ENVS = (faults.KILL_ENV, faults.LOG_ENV, faults.SNAPSHOT_ENV, faults.SNAPSHOT_OF_ENV)


def _run(env_extra: dict, script: str = SCRIPT, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in HOOK_ENVS}
    env.update(env_extra, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("kill_at, survived", [
    ("before:t.a:1", 0),
    ("after:t.a:1", 1),
    ("after:t.b:1", 3),
    ("before:t.a:2", 4),
    ("after:*:3", 6 - 1),
])
def test_kill_at_the_named_boundary_only(kill_at, survived):
    proc = _run({faults.KILL_ENV: kill_at})
    assert proc.returncode == -signal.SIGKILL
    assert len(proc.stdout.splitlines()) == survived


def test_record_mode_lists_every_boundary_and_unset_does_nothing(tmp_path):
    log = tmp_path / "commits.jsonl"
    assert _run({faults.LOG_ENV: str(log)}).returncode == 0
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["phase"], e["table"], e["n"]) for e in events] == [
        ("before", "t.a", 1), ("after", "t.a", 1), ("before", "t.b", 1), ("after", "t.b", 1),
        ("before", "t.a", 2), ("after", "t.a", 2)]
    plain = _run({})
    assert plain.returncode == 0 and len(plain.stdout.splitlines()) == 6


@pytest.mark.parametrize("text", ["after:t.a", "during:t.a:1", "after:t.a:0", "after::1", "after:t.a:x"])
def test_a_malformed_kill_setting_is_named(text):
    with pytest.raises(ValueError, match=faults.KILL_ENV):
        faults.parse_kill_at(text)


def test_snapshot_mode_copies_what_a_kill_at_each_boundary_leaves(tmp_path):
    warehouse, snapshots = tmp_path / "warehouse", tmp_path / "snapshots"
    warehouse.mkdir()
    snapshots.mkdir()
    env = {faults.SNAPSHOT_ENV: str(snapshots), faults.SNAPSHOT_OF_ENV: str(warehouse)}
    assert _run(env, WRITING, str(warehouse)).returncode == 0
    taken = {p.name: sorted(f.name for f in p.iterdir()) for p in snapshots.iterdir()}
    assert taken == {
        "before:t.a:1": ["data-0"], "after:t.a:1": ["data-0", "log-0"],
        "before:t.b:1": ["data-0", "data-1", "log-0"], "after:t.b:1": ["data-0", "data-1", "log-0", "log-1"],
        "before:t.a:2": ["data-0", "data-1", "data-2", "log-0", "log-1"],
        "after:t.a:2": ["data-0", "data-1", "data-2", "log-0", "log-1", "log-2"]}
    # each equals the folder a real SIGKILL at that boundary leaves
    for name, files in taken.items():
        killed = tmp_path / f"killed-{name.replace(':', '_')}"
        killed.mkdir()
        assert _run({faults.KILL_ENV: name}, WRITING, str(killed)).returncode == -signal.SIGKILL
        assert sorted(f.name for f in killed.iterdir()) == files


def test_snapshot_mode_without_its_warehouse_is_named(tmp_path):
    proc = _run({faults.SNAPSHOT_ENV: str(tmp_path)})
    assert proc.returncode != 0 and faults.SNAPSHOT_OF_ENV in proc.stderr
