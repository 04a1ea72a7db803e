"""The design card's backend: Horovod, launched from Spark with ``horovod.spark.run``.

A second implementation of :class:`~interest_lib.training.backend.Backend`
(``train.backend: horovod``) for the card-exact environment (``scripts/install_card_env.sh``
builds horovod 0.28.1 from its sdist with the project's C++17 patch). The training loop
(:func:`interest_lib.training.loop.train_worker`) is the same; only these calls differ:

============  ==========================================  ======================================
step          TorchDistributor backend                    Horovod backend
============  ==========================================  ======================================
launch        ``TorchDistributor(...).run(fn, job)``      ``horovod.spark.run(fn, args=(job,),
                                                          num_proc=N, use_gloo=True)``; rank 0's
                                                          result
setup         ``init_process_group(gloo | nccl)``         ``hvd.init()`` (+ the local rank's GPU)
wrap_model    ``DistributedDataParallel(model)``          the model itself
wrap_optim.   unchanged (DDP averages in backward)        broadcast optimizer state (if any)
                                                          and parameters from rank 0, then
                                                          ``hvd.DistributedOptimizer``
allreduce     ``dist.all_reduce(SUM)``                    ``hvd.allreduce(op=hvd.Sum)``
barrier       ``dist.barrier()``                          ``hvd.barrier()``
============  ==========================================  ======================================

Three adaptations keep the loop body unchanged *and* its semantics identical to DDP:

* The loop clips the gradient norm between ``backward()`` and ``step()``. DDP has averaged the
  gradients by then; Horovod's optimizer only waits for its all-reduces inside ``step()``, so
  clipping would read (and race with) the local gradients still being reduced in place. The
  wrapped optimizer therefore queues ``synchronize()`` at the end of every backward pass (the
  autograd engine's final callback, as DDP does), and ``step()`` then skips the second sync.
  Clipping sees the averaged gradients, exactly as under DDP.
* ``zero_grad(set_to_none=...)``: Horovod 0.28's override takes no arguments; the wrapper
  accepts it and keeps Horovod's guard against zeroing while all-reduces are in flight.
* ``hvd.broadcast_optimizer_state`` on an optimizer without state first steps it with zero
  gradients (AdamW then decays the weights and Adam's step count is one ahead of DDP's). It is
  only called when some rank has state to share (a resumed run); a fresh run skips it.

On CPU the gradient average is bitwise the same as DDP's for two ranks (``a/2 + b/2`` and
``(a + b) / 2`` are equal in floating point), so with the same feed both backends train the same
weights up to thread scheduling; the card tests check that.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from interest_lib.training.backend import Backend, BackendError

__all__ = ["HorovodBackend", "HOROVOD_INSTALL_HINT", "require_horovod"]

HOROVOD_INSTALL_HINT = (
    "train.backend=horovod needs horovod 0.28.1 built against torch 2.13 with gloo; it has no "
    "wheel and needs a C++17 patch. Build the card environment with `scripts/install_card_env.sh` "
    "(creates .venv-card and caches the horovod wheel) and run with .venv-card/bin/python or "
    ".venv-card/bin/interest; or use train.backend=torch_distributor.")


def require_horovod():
    """Import horovod.torch, or raise BackendError that says how to install it."""
    try:
        import horovod.torch as hvd
    except Exception as exc:  # ImportError, or a horovod built against another torch
        raise BackendError(f"{HOROVOD_INSTALL_HINT} (import failed: {exc!r})") from exc
    return hvd


class HorovodBackend(Backend):
    """Horovod over gloo (CPU) or NCCL (GPU, where built), one Spark task per rank."""

    name = "horovod"

    def __init__(self, num_processes: int, local_mode: bool = True, use_gpu: bool = False):
        """Check on the driver that horovod and its Spark runner import (clear error if not)."""
        super().__init__(num_processes, local_mode, use_gpu)
        require_horovod()
        try:
            import horovod.spark  # noqa: F401
        except Exception as exc:
            raise BackendError(f"{HOROVOD_INSTALL_HINT} (horovod.spark import failed: {exc!r})") from exc

    # --- driver side -----------------------------------------------------------------------
    def launch(self, fn: Callable, *args: Any) -> Any:
        """``horovod.spark.run``: ``num_processes`` Spark tasks, gloo rendezvous; rank 0's result.

        Every rank runs in a Spark task (executors, or the driver's task slots in local mode:
        ``local_mode`` only matters for TorchDistributor), so the Spark application needs at least
        ``num_processes`` free task slots.
        """
        import horovod.spark
        from pyspark import SparkContext

        sc = SparkContext._active_spark_context
        if sc is None:
            raise BackendError("train.backend=horovod runs through horovod.spark.run: start a "
                               "SparkSession first")
        slots = sc.defaultParallelism
        if slots < self.num_processes:
            raise BackendError(f"train.num_processes={self.num_processes} Horovod ranks need as many "
                               f"Spark task slots; this application has {slots}")
        env = dict(os.environ)
        # Ranks split the cores among themselves (the loop sets torch threads); keep OpenMP in line.
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // self.num_processes)))
        results = horovod.spark.run(fn, args=args, num_proc=self.num_processes, use_gloo=True,
                                    env=env, verbose=int(os.environ.get("INTEREST_HOROVOD_VERBOSE", "1")))
        return results[0]

    # --- worker side -----------------------------------------------------------------------
    def setup(self):
        import torch

        hvd = require_horovod()
        hvd.init()
        if self.use_gpu:
            if not torch.cuda.is_available():
                raise BackendError("train.use_gpu resolved to CUDA but this Horovod rank sees no GPU")
            device = torch.device("cuda", hvd.local_rank())
            torch.cuda.set_device(device)
        else:
            device = torch.device("cpu")
        self._device = device
        return device

    @property
    def rank(self) -> int:
        import horovod.torch as hvd

        return hvd.rank()

    @property
    def size(self) -> int:
        import horovod.torch as hvd

        return hvd.size()

    def wrap_model(self, model):
        """Horovod averages in the optimizer: the model is trained as it is."""
        return model

    def wrap_optimizer(self, optimizer, model):
        """Broadcast rank 0's optimizer state and parameters, then ``hvd.DistributedOptimizer``.

        Rank 0's state is the one that counts: it may have been restored from a checkpoint, and
        every rank built the model from the same seed anyway.
        """
        import horovod.torch as hvd
        import torch

        # Optimizer state first, parameters last: on a rank without state, Horovod creates it by
        # stepping the optimizer once with zero gradients, which moves the parameters (AdamW's
        # decoupled weight decay) and advances Adam's step count. When no rank has state yet (a
        # fresh run) there is nothing to share and that extra step is skipped: the run then trains
        # exactly as under DDP. After a resume (rank 0 loaded a checkpoint) rank 0's state wins.
        has_state = torch.tensor([float(bool(optimizer.state_dict()["state"]))])
        if float(hvd.allreduce(has_state, op=hvd.Sum, name="interest.has_optimizer_state")) > 0:
            hvd.broadcast_optimizer_state(optimizer, root_rank=0)
        hvd.broadcast_parameters(model.state_dict(), root_rank=0)
        dist = hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters(),
                                        op=hvd.Average)
        if hvd.size() > 1:
            _sync_at_end_of_backward(dist, model)
        _accept_set_to_none(dist)
        return dist

    def allreduce_sum(self, values):
        import horovod.torch as hvd

        return hvd.allreduce(values, op=hvd.Sum, name="interest.metrics")

    def barrier(self) -> None:
        import horovod.torch as hvd

        hvd.barrier()

    def shutdown(self) -> None:
        import horovod.torch as hvd

        if hvd.is_initialized():
            hvd.shutdown()


def _sync_at_end_of_backward(dist, model) -> None:
    """Make gradients averaged by the end of ``backward()`` (as under DDP), not in ``step()``.

    A post-accumulate hook on every parameter queues one engine callback per backward pass; the
    callback runs after all gradient hooks (Horovod's all-reduce submissions included) and waits
    for the all-reduces. ``step()`` then runs without a second synchronisation.
    """
    import torch

    state = {"queued": False}

    def finish():
        state["queued"] = False
        dist.synchronize()

    def hook(_param):
        if not state["queued"]:
            state["queued"] = True
            torch.autograd.Variable._execution_engine.queue_callback(finish)

    for param in model.parameters():
        if param.requires_grad:
            param.register_post_accumulate_grad_hook(hook)

    horovod_step = dist.step

    def step(closure=None):
        if dist._synchronized:
            with dist.skip_synchronize():
                return horovod_step(closure)
        return horovod_step(closure)

    dist.step = step


def _accept_set_to_none(dist) -> None:
    """Horovod 0.28's ``zero_grad()`` takes no ``set_to_none``; the loop passes it."""
    import torch

    def zero_grad(set_to_none: bool = True):
        if dist._handles:
            raise AssertionError("optimizer.zero_grad() was called after loss.backward() but before "
                                 "optimizer.step() or optimizer.synchronize()")
        return torch.optim.Optimizer.zero_grad(dist, set_to_none=set_to_none)

    dist.zero_grad = zero_grad
