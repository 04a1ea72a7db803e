"""Where a TorchDistributor launch leaves torchrun's log folders: nowhere, once it is done."""

from __future__ import annotations

import os
import tempfile
import time

import pytest

from interest_lib.training.backend import (
    TORCHRUN_LOG_ENV, TorchDistributorBackend, use_shared_torchrun_log_dir,
)

pytestmark = pytest.mark.spark


@pytest.fixture
def private_tmpdir(tmp_path, monkeypatch):
    """TMPDIR (and Python's cached temp dir) pointed at an empty folder of this test."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.delenv(TORCHRUN_LOG_ENV, raising=False)
    return tmp


def test_a_local_launch_returns_rank_zeros_result_and_leaves_nothing_in_tmpdir(spark, private_tmpdir):
    # torchrun (one rank) runs sum([1, 2, 3]); unwrapped, it left a torchelastic_* folder in TMPDIR
    # after every run.
    assert TorchDistributorBackend(1, local_mode=True, use_gpu=False).launch(sum, [1, 2, 3]) == 6
    assert sorted(os.listdir(private_tmpdir)) == []
    assert TORCHRUN_LOG_ENV not in os.environ


def test_a_log_folder_the_user_set_is_used_and_kept(spark, private_tmpdir, tmp_path, monkeypatch):
    logs = tmp_path / "my-logs"
    logs.mkdir()
    monkeypatch.setenv(TORCHRUN_LOG_ENV, str(logs))
    assert TorchDistributorBackend(1, local_mode=True, use_gpu=False).launch(sum, [4, 5]) == 9
    assert len(os.listdir(logs)) == 1 and os.environ[TORCHRUN_LOG_ENV] == str(logs)
    assert sorted(os.listdir(private_tmpdir)) == []


def test_executors_share_one_log_folder_and_prune_day_old_entries(private_tmpdir, monkeypatch):
    shared = private_tmpdir / "interest-torchrun"
    (shared / "old-run" / "attempt_0").mkdir(parents=True)
    (shared / "recent-run").mkdir()
    day_ago = time.time() - 25 * 3600
    os.utime(shared / "old-run", (day_ago, day_ago))
    assert use_shared_torchrun_log_dir() == str(shared) == os.environ[TORCHRUN_LOG_ENV]
    assert sorted(os.listdir(shared)) == ["recent-run"]
