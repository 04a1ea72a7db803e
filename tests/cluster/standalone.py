"""A real Spark standalone cluster on 127.0.0.1: one master and two 1-core workers.

Used by the ``standalone_cluster`` fixture in conftest.py.

The daemons are started from pyspark's own ``bin/spark-class`` (SPARK_HOME = the pyspark package
folder), each in its own process group with its output in a temp folder; the fixture waits until
the master's JSON reports both workers alive and always kills the process groups afterwards,
whether the test passed, failed or the setup itself failed. On a failure the daemons' logs and
the executors' stderr are printed.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.jvm import FAST_JVM
from tests.ports import free_ports


REPO = Path(__file__).resolve().parents[2]
SPARK_HOME = Path(__import__("pyspark").__file__).resolve().parent
WORKERS = 2
WORKER_MEMORY = "2g"
START_TIMEOUT_S = 180


def python_without_project(dest: Path) -> Path:
    """A Python with every installed dependency but not interest_lib, like a cluster image built
    from the requirements: a venv whose only site entry is a .pth naming this venv's
    site-packages (a path listed in a .pth is not scanned for .pth files, so the editable install
    of the checkout stays invisible). Jobs run with it must get interest_lib from --py-files."""
    import site
    import venv

    venv.EnvBuilder(with_pip=False, symlinks=True).create(dest)
    # This venv's site-packages, then any a .pth layers after it (.venv-card takes torch from
    # .venv that way: scripts/install_card_env.sh), in sys.path's order.
    site_dirs = [d for d in site.getsitepackages() if d.endswith("site-packages")]
    site_dirs += [d for d in sys.path if d.endswith("site-packages") and d not in site_dirs]
    python = dest / "bin" / "python"
    target = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    Path(target, "project-dependencies.pth").write_text("\n".join(site_dirs) + "\n")
    check = subprocess.run([str(python), "-c", "import torch, pyspark, deltalake, interest_lib"],
                           capture_output=True, text=True, cwd=dest)
    assert "No module named 'interest_lib'" in check.stderr, check.stderr[-2000:]
    return python


def cluster_env() -> dict:
    """Environment of the daemons and of spark-submit: this machine's loopback, the venv's Python."""
    env = dict(os.environ)
    env.update(SPARK_HOME=str(SPARK_HOME), SPARK_LOCAL_IP="127.0.0.1", SPARK_MASTER_HOST="127.0.0.1",
               PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable, TZ="UTC")
    # The jobs must import the shipped package, not this checkout through PYTHONPATH.
    env.pop("PYTHONPATH", None)
    # The master and the workers run C1 only with the serial collector, like the driver and the
    # executors (tests/jvm.py): they idle, but start-up and heartbeats cost C2 compilations.
    env["SPARK_DAEMON_JAVA_OPTS"] = FAST_JVM
    return env


@dataclass
class StandaloneCluster:
    """Handles of a running cluster."""

    root: Path
    master_url: str
    webui_url: str
    env: dict
    procs: dict = field(default_factory=dict)   # name -> Popen
    logs: dict = field(default_factory=dict)    # name -> log file
    work_dirs: list = field(default_factory=list)

    def state(self) -> dict:
        """The master's JSON status (workers, running and completed applications)."""
        with urllib.request.urlopen(f"{self.webui_url}/json/", timeout=5) as resp:
            return json.load(resp)

    def executor_logs(self) -> list[Path]:
        """stderr / stdout files of every executor the workers launched (work/<app>/<id>/)."""
        return sorted(Path(p) for d in self.work_dirs for p in glob.glob(f"{d}/app-*/*/std*"))

    def dump_logs(self, tail_chars: int = 6000) -> str:
        """The tail of every daemon and executor log, for a failure report."""
        parts = []
        for path in [*self.logs.values(), *self.executor_logs()]:
            try:
                text = Path(path).read_text(errors="replace")
            except OSError as exc:
                text = f"<unreadable: {exc}>"
            parts.append(f"===== {path} (last {tail_chars} chars) =====\n{text[-tail_chars:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Kill each daemon's process group (the workers' executors and Python workers with it)."""
        for proc in reversed(list(self.procs.values())):
            _kill_group(proc, signal.SIGTERM)
        deadline = time.time() + 20
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.procs.values():
            _kill_group(proc, signal.SIGKILL)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the daemon was started with start_new_session: pgid == pid
    except (ProcessLookupError, PermissionError):
        pass


def _spawn(cluster: StandaloneCluster, name: str, args: list[str]) -> None:
    log = cluster.root / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as fh:
        cluster.procs[name] = subprocess.Popen(
            [str(SPARK_HOME / "bin" / "spark-class"), *args], stdout=fh, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=cluster.env, cwd=cluster.root, start_new_session=True)
    cluster.logs[name] = log


def _wait_for_workers(cluster: StandaloneCluster, n: int) -> None:
    deadline = time.time() + START_TIMEOUT_S
    last = None
    while time.time() < deadline:
        for name, proc in cluster.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} during start-up")
        _follow_master_ui(cluster)
        try:
            last = cluster.state()
            if last.get("aliveworkers", 0) >= n:
                return
        except (OSError, ValueError) as exc:
            # The UI is not up yet, or Jetty is up but /json/ not yet mounted: it then answers
            # with the HTML status page (seen in CI), which is not JSON.
            last = repr(exc)[:300]
        time.sleep(1)
    raise TimeoutError(f"{n} workers not registered after {START_TIMEOUT_S} s; master said: {last}")


def _follow_master_ui(cluster: StandaloneCluster) -> None:
    """Point ``webui_url`` at the port the master's UI bound: Spark moves it one port up when the
    chosen one is taken (it logs "Bound MasterWebUI to 127.0.0.1, and started at http://...:N")."""
    try:
        text = Path(cluster.logs["master"]).read_text(errors="replace")
    except (KeyError, OSError):
        return
    found = re.findall(r"Bound MasterWebUI to \S+, and started at http://[^:/\s]+:(\d+)", text)
    if found:
        cluster.webui_url = f"http://127.0.0.1:{found[-1]}"


def start_cluster(root: Path, workers: int = WORKERS) -> StandaloneCluster:
    """Start the master and ``workers`` 1-core workers; return once all are registered."""
    # Every daemon's port chosen here (workers' too): one left to the kernel could take a port
    # picked for another before that one binds it (tests/ports.py).
    port, webui, *worker_ports = free_ports(2 + 2 * workers)
    cluster = StandaloneCluster(root=root, master_url=f"spark://127.0.0.1:{port}",
                                webui_url=f"http://127.0.0.1:{webui}", env=cluster_env())
    try:
        _spawn(cluster, "master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                   "--port", str(port), "--webui-port", str(webui)])
        for i, (rpc, ui) in enumerate(zip(worker_ports[::2], worker_ports[1::2])):
            work = root / f"worker{i}"
            work.mkdir(parents=True, exist_ok=True)
            cluster.work_dirs.append(work)
            _spawn(cluster, f"worker{i}", [
                "org.apache.spark.deploy.worker.Worker", cluster.master_url, "--host", "127.0.0.1",
                "--port", str(rpc), "--cores", "1", "--memory", WORKER_MEMORY, "--webui-port", str(ui),
                "--work-dir", str(work)])
        _wait_for_workers(cluster, workers)
    except BaseException:
        print(cluster.dump_logs(), file=sys.stderr)
        cluster.stop()
        raise
    return cluster


def package_project(dest: Path) -> Path:
    """The project as a zip for ``--py-files``, laid out like the wheel setup.py builds:
    interest_lib/ with conf/**/*.yml inside it as interest_lib/_conf/ (read from the zip)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / "interest_lib.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted((REPO / "interest_lib").rglob("*.py")):
            zf.write(path, path.relative_to(REPO).as_posix())
        for path in sorted((REPO / "conf").rglob("*.yml")):
            zf.write(path, f"interest_lib/_conf/{path.relative_to(REPO / 'conf').as_posix()}")
    return out
