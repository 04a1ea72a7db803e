"""Distributed training backends behind one small interface.

The driver calls :meth:`Backend.launch` with a picklable worker function; inside each rank the
worker calls :meth:`Backend.setup` and then only the interface (rank / size, wrap the model and
optimizer, all-reduce metrics, barrier, rank-0 checkpoints), so a second backend (Horovod) plugs
in without touching the training loop. Backends are found by name in
:data:`interest_lib.registry.BACKENDS`.
"""

from __future__ import annotations

import abc
import os
import shutil
import tempfile
import time
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator

from interest_lib.conf.core import ConfigError
from interest_lib.registry import BACKENDS, resolve


class BackendError(ConfigError, RuntimeError):
    """A backend cannot run as configured (missing package, GPUs not visible to Spark, a setting
    it cannot honour, ...): a configuration error, so ``interest`` exits 2 with the message."""


def export_package_path() -> None:
    """Put the archive interest_lib was imported from (a ``--py-files`` zip or wheel) on
    PYTHONPATH so that subprocesses import it too. PySpark adds ``--py-files`` to its Python
    workers' ``sys.path`` only; TorchDistributor's ranks are new interpreters (torchrun) that
    inherit just the environment, so without this they fail with "No module named
    'interest_lib'" unless the package is installed on every executor."""
    import interest_lib

    archive = os.path.dirname(os.path.dirname(os.path.abspath(interest_lib.__file__)))
    if not os.path.isfile(archive):  # installed package or checkout: importable already
        return
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if archive not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([archive, *paths])


#: Set by torchrun's agent in the environment of every rank it starts. Only such a process, whose
#: script ends right after the training function returns, may end with os._exit: a process that
#: runs the training loop itself (tests, notebooks) would lose its own exit status (pytest's
#: "tests failed" would become 0).
TORCHRUN_RANK_ENV = "TORCHELASTIC_RUN_ID"


def exit_without_native_teardown() -> None:
    """End this process, once Python's own exit work is done (the rest of the script, ``atexit``
    callbacks, logging flushed), with ``os._exit`` instead of the interpreter's teardown.

    Called by a torchrun rank that finished its training (:data:`TORCHRUN_RANK_ENV`). On the
    standalone cluster a rank that had already left its process group sometimes aborted while the
    interpreter tore down ("terminate called without an active exception", SIGABRT: a native
    thread destroyed at exit); torchrun then reported that node as failed and the other node's
    agent waited out its 300-second exit barrier before returning (seen once in ten clean-clone
    test runs, 2026-12-05; ``bench/rank_exit.py`` reproduces it). Nothing the training wrote is
    lost: the exit code is 1 if an uncaught exception ended the script after this call, else 0,
    so the status of a ``sys.exit(n)`` after it is lost and a process that decides its own exit
    status must not call it.
    """
    import atexit
    import sys

    state = {"failed": False, "exiting": False}
    hook = sys.excepthook

    def record_failure(kind, value, tb):
        state["failed"] = True
        hook(kind, value, tb)

    def exit_now():
        if state["exiting"]:  # called again by the _run_exitfuncs below
            return
        state["exiting"] = True
        atexit._run_exitfuncs()  # the other callbacks (logging.shutdown, finalizers), once
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # a closed or broken stream: nothing left to flush
                pass
        os._exit(1 if state["failed"] else 0)

    sys.excepthook = record_failure
    atexit.register(exit_now)


#: torchrun's --log-dir as an environment variable. Unset, torchrun makes a ``torchelastic_*``
#: folder in TMPDIR for every run and never removes it: a scheduled job leaves one per training
#: run, forever. Runs launched here give it a folder that is removed (driver) or pruned (executors).
TORCHRUN_LOG_ENV = "PET_LOG_DIR"
#: On executors the folder is shared by the runs of one machine; entries older than this go.
EXECUTOR_LOG_MAX_AGE_S = 24 * 3600


@contextmanager
def torchrun_log_dir() -> Iterator[str]:
    """torchrun's log folder for the runs started inside: a new temporary folder, removed on exit
    (a folder the user set in PET_LOG_DIR is used and kept)."""
    if os.environ.get(TORCHRUN_LOG_ENV):
        yield os.environ[TORCHRUN_LOG_ENV]
        return
    path = tempfile.mkdtemp(prefix="interest-torchrun-")
    os.environ[TORCHRUN_LOG_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(TORCHRUN_LOG_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


def use_shared_torchrun_log_dir(max_age_s: float = EXECUTOR_LOG_MAX_AGE_S) -> str:
    """On an executor (torchrun started by a Spark task, nothing to wrap it): point PET_LOG_DIR
    at one folder per machine and remove its entries older than ``max_age_s``; return it."""
    if os.environ.get(TORCHRUN_LOG_ENV):
        return os.environ[TORCHRUN_LOG_ENV]
    path = os.path.join(tempfile.gettempdir(), "interest-torchrun")
    os.makedirs(path, exist_ok=True)
    now = time.time()
    for entry in os.scandir(path):
        try:
            if now - entry.stat().st_mtime > max_age_s:
                shutil.rmtree(entry.path, ignore_errors=True)
        except FileNotFoundError:
            pass
    os.environ[TORCHRUN_LOG_ENV] = path
    return path


class Backend(abc.ABC):
    """Driver side: ``launch``. Worker side: everything else."""

    name = "backend"

    def __init__(self, num_processes: int, local_mode: bool = True, use_gpu: bool = False):
        self.num_processes, self.local_mode, self.use_gpu = num_processes, local_mode, use_gpu

    # --- driver side ---------------------------------------------------------------------
    @abc.abstractmethod
    def launch(self, fn: Callable, *args: Any) -> Any:
        """Run ``fn(*args)`` on every rank; return rank 0's result."""

    def __setstate__(self, state):
        # Unpickled inside a Spark task (the barrier task that starts the ranks): the rank
        # processes it spawns must import interest_lib from where this process did.
        self.__dict__.update(state)
        export_package_path()

    # --- worker side ---------------------------------------------------------------------
    @abc.abstractmethod
    def setup(self):
        """Join the process group; return the torch device of this rank."""

    @property
    @abc.abstractmethod
    def rank(self) -> int:
        """This process' rank (0 = chief)."""

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """Number of ranks."""

    @property
    def is_chief(self) -> bool:
        """Rank 0 writes checkpoints, logs and the final model."""
        return self.rank == 0

    @abc.abstractmethod
    def wrap_model(self, model):
        """The model as trained (gradients averaged across ranks)."""

    def wrap_optimizer(self, optimizer, model):
        """The optimizer as trained (DDP averages gradients in the model: unchanged)."""
        return optimizer

    @abc.abstractmethod
    def allreduce_sum(self, values):
        """Element-wise sum of a float64 tensor over all ranks."""

    @abc.abstractmethod
    def barrier(self) -> None:
        """Wait for every rank."""

    def shutdown(self) -> None:
        """Leave the process group."""


class TorchDistributorBackend(Backend):
    """PySpark's TorchDistributor: torchrun on the driver (local_mode) or in barrier tasks on the
    executors; plain PyTorch DDP inside (gloo on CPU, NCCL on GPU)."""

    name = "torch_distributor"

    def __setstate__(self, state):
        super().__setstate__(state)
        if not self.local_mode:  # the barrier task about to start torchrun (in a rank: no-op)
            use_shared_torchrun_log_dir()

    def launch(self, fn, *args):
        from pyspark.ml.torch.distributor import TorchDistributor

        with torchrun_log_dir() if self.local_mode else nullcontext():
            return TorchDistributor(num_processes=self.num_processes, local_mode=self.local_mode,
                                    use_gpu=self.use_gpu).run(fn, *args)

    def setup(self):
        import torch
        import torch.distributed as dist

        if self.use_gpu:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
        else:
            device = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group("nccl" if self.use_gpu else "gloo")
        self._device = device
        return device

    @property
    def rank(self) -> int:
        import torch.distributed as dist

        return dist.get_rank()

    @property
    def size(self) -> int:
        import torch.distributed as dist

        return dist.get_world_size()

    def wrap_model(self, model):
        from torch.nn.parallel import DistributedDataParallel

        ids = [self._device.index] if self._device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def allreduce_sum(self, values):
        import torch.distributed as dist

        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def shutdown(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
        if os.environ.get(TORCHRUN_RANK_ENV):
            exit_without_native_teardown()


class DriverBackend(Backend):
    """One rank in the driver process itself: no torchrun, no process group (``train.backend:
    driver``, ``train.num_processes: 1``, ``train.local_mode: true``). The same loop and numerics
    as one TorchDistributor rank (a world of one averages nothing) without starting the launcher
    and a rank interpreter that imports torch again, ~5 CPU s per run: for one machine, small
    tables and tests. The driver's torch thread count and random state are restored afterwards."""

    name = "driver"

    def __init__(self, num_processes: int, local_mode: bool = True, use_gpu: bool = False):
        if num_processes != 1 or not local_mode:
            raise BackendError(f"train.backend=driver trains in the driver process as one rank: it needs "
                               f"train.num_processes=1 and train.local_mode=true (got {num_processes} and "
                               f"{str(local_mode).lower()}); use torch_distributor for more ranks or executors")
        super().__init__(num_processes, local_mode, use_gpu)

    def launch(self, fn, *args):
        import torch

        threads = torch.get_num_threads()
        devices = [torch.cuda.current_device()] if self.use_gpu else []
        try:
            with torch.random.fork_rng(devices=devices):
                return fn(*args)
        finally:
            torch.set_num_threads(threads)

    def setup(self):
        import torch

        return torch.device("cuda", torch.cuda.current_device()) if self.use_gpu else torch.device("cpu")

    @property
    def rank(self) -> int:
        return 0

    @property
    def size(self) -> int:
        return 1

    def wrap_model(self, model):
        return model

    def allreduce_sum(self, values):
        return values

    def barrier(self) -> None:
        pass


def make_backend(name: str, num_processes: int, local_mode: bool, use_gpu: bool) -> Backend:
    """The backend registered as ``name`` (train.backend; :data:`interest_lib.registry.BACKENDS`)."""
    if name not in BACKENDS:
        raise BackendError(f"unknown train.backend {name!r}; available: {', '.join(BACKENDS)}")
    return resolve(BACKENDS[name])(num_processes, local_mode, use_gpu)
