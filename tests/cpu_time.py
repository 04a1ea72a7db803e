"""CPU seconds per test, of the pytest process and every process below it (Spark's JVM and Python
workers, jobs run as subprocesses), printed after pytest's wall-time durations.

The suite's runs share the machine's cores, so a test's wall time says more about its
neighbours than about itself; its CPU time is what the suite's total is made of. Counted from
/proc (Linux): user + system time of the pytest process and its live descendants, plus what they
reaped of their finished children. A daemon that leaves the tree (setsid + reparented) is not
counted, nor is a process killed before its parent reaped it; the second column, the whole
machine's busy CPU seconds over the test, counts those too and is exact when nothing else runs
(``TEST_PARALLEL=0``), shared otherwise. ``INTEREST_TEST_CPU_TOP`` sets how many tests are printed
(20; 0: none).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces


def tree_cpu_seconds(root: int | None = None) -> float:
    """CPU seconds of process ``root`` (this one) and its live descendants, with their reaped children."""
    root = root or os.getpid()
    parent, ticks = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(entry)
        if fields is None:
            continue
        # fields[1] is ppid; [11:15] utime, stime, cutime, cstime (man 5 proc, fields 14-17)
        parent[int(entry)] = int(fields[1])
        ticks[int(entry)] = sum(int(x) for x in fields[11:15])
    total = 0
    for pid, tick in ticks.items():
        p = pid
        while p and p != root:
            p = parent.get(p, 0)
        if p == root:
            total += tick
    return total / _TICK


def machine_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot (all cores; idle and iowait left out)."""
    with open("/proc/stat") as fh:
        ticks = [int(x) for x in fh.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / _TICK


class CpuTimes:
    """The pytest plugin: a CPU reading around each test's setup, call and teardown."""

    def __init__(self, top: int):
        self.top, self.seconds = top, {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        """Counts a test's setup + call + teardown (its module fixtures' setup included)."""
        before, machine = tree_cpu_seconds(), machine_busy_seconds()
        yield
        self.seconds[item.nodeid] = (tree_cpu_seconds() - before, machine_busy_seconds() - machine)

    def pytest_terminal_summary(self, terminalreporter):
        """The ``top`` tests by CPU seconds, and the run's total."""
        if not self.seconds:
            return
        tr = terminalreporter
        tr.write_sep("=", f"most CPU {self.top} tests (setup+call+teardown: CPU s of this process tree, "
                          "busy CPU s of the machine)")
        for nodeid, (tree, machine) in sorted(self.seconds.items(), key=lambda kv: -kv[1][0])[:self.top]:
            tr.write_line(f"{tree:8.1f} {machine:8.1f}  {nodeid}")
        trees, machines = zip(*self.seconds.values())
        tr.write_line(f"{sum(trees):8.1f} {sum(machines):8.1f}  all {len(self.seconds)} tests")


def register(config) -> None:
    """Adds the plugin unless ``INTEREST_TEST_CPU_TOP=0`` or there is no /proc."""
    top = int(os.environ.get("INTEREST_TEST_CPU_TOP", "20"))
    if top > 0 and Path("/proc/self/stat").exists():
        config.pluginmanager.register(CpuTimes(top), "interest-cpu-times")
