"""scripts/gpu_check.sh without a GPU: its argument handling and its failure messages.

The GPU part itself (NCCL training, scoring on the GPU) runs only on a machine with a CUDA GPU;
here stand-ins for ``nvidia-smi`` and the Python interpreter drive the script to each refusal.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.sh"


def _run(*args: str, smi: str = "/nonexistent/nvidia-smi", **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "GPU_CHECK_NVIDIA_SMI": smi, **env})


def _stub(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def test_help_lists_every_option_and_exit_codes():
    out = _run("--help")
    assert out.returncode == 0
    for option in ("--python", "--work", "--users", "--epochs", "--copies", "--time-limit", "--skip-install"):
        assert option in out.stdout
    assert "3 no CUDA GPU" in out.stdout


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unknown argument '--bogus'"),
    (["--users", "x"], "--users must be a positive integer, got 'x'"),
    (["--epochs", "0"], "--epochs must be a positive integer, got '0'"),
    (["--time-limit"], "--time-limit needs a value"),
    (["--work", "--skip-install"], "--work needs a value"),
])
def test_bad_arguments_exit_2_naming_the_argument(args, message):
    out = _run(*args)
    assert out.returncode == 2 and message in out.stderr and "FAILED" in out.stderr


def test_no_nvidia_driver_fails_with_exit_3():
    out = _run("--skip-install")
    assert out.returncode == 3
    assert "no CUDA GPU: '/nonexistent/nvidia-smi' not found" in out.stderr


def test_nvidia_smi_listing_no_gpu_fails_with_exit_3(tmp_path):
    smi = _stub(tmp_path / "nvidia-smi", "echo 'No devices were found'")
    out = _run("--skip-install", smi=smi)
    assert out.returncode == 3 and "lists no GPU" in out.stderr


def test_torch_that_cannot_see_the_gpu_fails_with_exit_3(tmp_path):
    smi = _stub(tmp_path / "nvidia-smi", "echo 'GPU 0: NVIDIA Test (UUID: GPU-0)'")
    # A Python whose torch is a CPU build: imports work, torch.cuda.is_available() is False.
    python = _stub(tmp_path / "python", "echo '2.13.0+cpu None False 0'")
    out = _run("--skip-install", "--python", python, smi=smi)
    assert out.returncode == 3
    assert "1 GPU(s)" in out.stdout
    assert "no CUDA GPU visible to torch 2.13.0+cpu (built for CUDA None)" in out.stderr


def test_missing_project_with_skip_install_fails_with_exit_1(tmp_path):
    smi = _stub(tmp_path / "nvidia-smi", "echo 'GPU 0: NVIDIA Test (UUID: GPU-0)'")
    python = _stub(tmp_path / "python", "exit 1")  # cannot import the project
    out = _run("--skip-install", "--python", python, smi=smi)
    assert out.returncode == 1 and "cannot import interest_lib" in out.stderr


def _gpu_machine(tmp_path, cli_body: str) -> tuple[str, str]:
    """Stand-ins for a machine with one GPU: nvidia-smi lists it, torch sees it, and every
    ``python -m interest_lib.cli ...`` runs ``cli_body``."""
    smi = _stub(tmp_path / "nvidia-smi", "echo 'GPU 0: NVIDIA Test (UUID: GPU-0)'")
    python = _stub(tmp_path / "python", f"""case "$*" in
  *interest_lib.cli*) {cli_body} ;;
  *) echo '2.13.0 12.1 True 1' ;;
esac""")
    return smi, python


def test_a_cuda_error_in_any_step_fails_it_naming_the_step(tmp_path):
    smi, python = _gpu_machine(tmp_path, "echo 'RuntimeError: CUDA error: an illegal memory access was encountered'; exit 0")
    out = _run("--skip-install", "--python", python, "--work", str(tmp_path / "work"), smi=smi)
    assert out.returncode == 1
    assert "'generate' hit a CUDA/NCCL error" in out.stderr and "illegal memory access" in out.stderr
    # The step ran the project's CLI with the check's configuration (GPU resources for Spark).
    conf = (tmp_path / "work" / "conf.yml").read_text()
    assert '"spark.driver.resource.gpu.amount": "1"' in conf
    import json

    found = subprocess.run([str(tmp_path / "work" / "gpus.sh")], capture_output=True, text=True).stdout
    assert json.loads(found) == {"name": "gpu", "addresses": ["0"]}  # Spark's discovery-script format
    assert json.loads(conf)["spark"]["extra"]["spark.driver.resource.gpu.discoveryScript"].endswith("gpus.sh")


def test_a_failing_step_and_the_time_limit_fail_the_check(tmp_path):
    smi, python = _gpu_machine(tmp_path, "echo boom >&2; exit 7")
    out = _run("--skip-install", "--python", python, "--work", str(tmp_path / "a"), smi=smi)
    assert out.returncode == 1 and "'generate' exited 7" in out.stderr and "boom" in out.stderr
    smi, python = _gpu_machine(tmp_path, "sleep 5")
    out = _run("--skip-install", "--python", python, "--work", str(tmp_path / "b"), "--time-limit", "1", smi=smi)
    assert out.returncode == 124 and "time limit of 1s" in out.stderr
