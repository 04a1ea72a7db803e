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

pytestmark = [pytest.mark.unit, pytest.mark.pure_python]  # not rerun in .venv-card (Makefile)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Three commits: a, b, a; prints each boundary it survived.
SCRIPT = """
from interest_lib.storage.faults import commit_boundary
for table in ("t.a", "t.b", "t.a"):
    for phase in ("before", "after"):
        commit_boundary(table, phase)
        print(phase, table, flush=True)
"""


def _run(env_extra: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (faults.KILL_ENV, faults.LOG_ENV)}
    env.update(env_extra, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)


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
