"""How often a finished gloo DDP rank aborts at exit, with and without
``interest_lib.training.backend.exit_without_native_teardown``.

Each launch is ``torchrun --standalone --nproc_per_node 2`` of a small script: DDP over a GRU on
gloo, a few steps, an all-reduce, a barrier, ``destroy_process_group`` (what every training rank
does), then exit, either normally or through the helper. A launch fails when a rank dies, e.g.
with "terminate called without an active exception" (SIGABRT) in the interpreter's teardown:
under TorchDistributor on a cluster the other node's torchrun then waits out its 300-second
exit barrier.

    python bench/rank_exit.py [--launches 60]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time

SCRIPT = textwrap.dedent("""
    import sys
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo")
    model = DistributedDataParallel(torch.nn.GRU(16, 32, batch_first=True))
    optimizer = torch.optim.Adam(model.parameters())
    for _ in range(5):
        out, _ = model(torch.randn(8, 10, 16))
        out.sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    total = torch.ones(3)
    dist.all_reduce(total)
    dist.barrier()
    dist.destroy_process_group()
    if sys.argv[1] == "helper":
        from interest_lib.training.backend import exit_without_native_teardown
        exit_without_native_teardown()
""")


LABELS = {"plain": "plain exit", "helper": "helper"}


def launch(script: str, variant: str) -> tuple[bool, bool]:
    """One torchrun launch; returns (succeeded, a rank printed the std::terminate message)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           script, variant], capture_output=True, text=True, timeout=300, env=env)
    return proc.returncode == 0, "terminate called" in proc.stdout + proc.stderr


def main() -> None:
    """Run the launches of both variants interleaved and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=60, help="launches per variant")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "rank.py")
        with open(script, "w") as fh:
            fh.write(SCRIPT)
        counts = {v: [0, 0, 0] for v in ("plain", "helper")}  # launches, failed, terminate
        start = time.time()
        for i in range(args.launches):
            for variant in counts:  # interleaved: both see the same machine load
                ok, terminate = launch(script, variant)
                c = counts[variant]
                c[0] += 1
                c[1] += not ok
                c[2] += terminate
            if (i + 1) % 10 == 0:
                print(f"  {i + 1}/{args.launches} launches per variant, {time.time() - start:.0f} s", flush=True)
    print(f"{'variant':12s} {'launches':>9s} {'failed':>7s} {'terminate':>10s} {'rate':>7s}")
    for variant, (n, failed, terminate) in counts.items():
        print(f"{LABELS[variant]:12s} {n:9d} {failed:7d} {terminate:10d} {failed / n:7.1%}")


if __name__ == "__main__":
    main()
