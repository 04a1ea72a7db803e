"""A torchrun rank that finished ends with os._exit after Python's own exit work
(interest_lib.training.backend.exit_without_native_teardown): nothing it printed, logged or
registered to run at exit is lost, a later uncaught exception still exits 1, and the
interpreter's teardown (where a rank on the cluster aborted) does not run."""

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.unit

SCRIPT = textwrap.dedent("""
    import atexit, logging, sys
    from interest_lib.training.backend import exit_without_native_teardown

    out = sys.argv[1]

    class TornDown:
        def __del__(self, open=open, path=out + ".teardown"):  # only in the interpreter's teardown
            open(path, "w").write("ran")

    keep = TornDown()
    atexit.register(lambda: open(out + ".atexit", "w").write("ran"))
    logging.basicConfig(filename=out + ".log", level=logging.INFO)
    if sys.argv[2] == "on":
        exit_without_native_teardown()
    logging.info("logged after the call")
    print("printed after the call", end="")  # no newline: still in the pipe's buffer at exit
    if sys.argv[3] == "raise":
        raise RuntimeError("boom after the call")
""")


def _run(tmp_path, mode: str, end: str):
    script = tmp_path / "rank.py"
    script.write_text(SCRIPT)
    out = tmp_path / mode
    proc = subprocess.run([sys.executable, str(script), str(out), mode, end], capture_output=True,
                          text=True, timeout=120)
    ran = {name: (tmp_path / f"{mode}.{name}").exists() for name in ("teardown", "atexit")}
    log = (tmp_path / f"{mode}.log").read_text() if (tmp_path / f"{mode}.log").exists() else ""
    return proc, ran, log


def test_a_finished_rank_exits_0_with_everything_written_and_no_teardown(tmp_path):
    proc, ran, log = _run(tmp_path, "on", "ok")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "printed after the call"
    assert "logged after the call" in log
    assert ran == {"teardown": False, "atexit": True}
    # The same script without the call: the teardown runs (what the call skips is real).
    plain, plain_ran, _ = _run(tmp_path, "off", "ok")
    assert plain.returncode == 0 and plain_ran == {"teardown": True, "atexit": True}


def test_an_uncaught_exception_after_the_call_still_exits_1_with_its_traceback(tmp_path):
    proc, ran, log = _run(tmp_path, "on", "raise")
    assert proc.returncode == 1
    assert "RuntimeError: boom after the call" in proc.stderr
    assert proc.stdout == "printed after the call" and "logged after the call" in log
    assert ran["atexit"] is True


SHUTDOWN = textwrap.dedent("""
    import sys
    from interest_lib.training.backend import TorchDistributorBackend

    TorchDistributorBackend(1, local_mode=True, use_gpu=False).shutdown()
    sys.exit(3)
""")


@pytest.mark.parametrize("rank_env, status", [(None, 3), ("a-torchrun-run", 0)])
def test_shutdown_ends_with_os_exit_only_in_a_torchrun_rank(tmp_path, rank_env, status):
    """Outside a torchrun rank (pytest running the loop itself, a notebook) the process keeps its
    own exit status: pytest's "tests failed" must not become 0."""
    import os

    from interest_lib.training.backend import TORCHRUN_RANK_ENV

    script = tmp_path / "shutdown.py"
    script.write_text(SHUTDOWN)
    env = {k: v for k, v in os.environ.items() if k != TORCHRUN_RANK_ENV}
    if rank_env:
        env[TORCHRUN_RANK_ENV] = rank_env
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == status, proc.stderr
