"""Free TCP ports for the daemons the tests start (the standalone cluster, the Kafka broker,
torch's rendezvous), chosen where no other process is handed one by the kernel.

Binding port 0 and closing the socket returns a port from the kernel's ephemeral range, which the
kernel may hand to the next process that binds port 0 before our daemon binds it. It did: a
standalone worker took the port picked for the master's web UI, the master moved its UI one port
up, and the test waited 180 s on the worker's port (make test, 2026-12-05). Spark's drivers,
executors and block managers bind port 0 all through the suite's runs, so the ports here are
drawn at random from below the ephemeral range (``/proc/sys/net/ipv4/ip_local_port_range``),
where the kernel never assigns one on its own, and each is checked free by binding it.
"""

from __future__ import annotations

import random
import socket

#: Lowest port drawn (below it lie well-known and registered services' defaults).
LOWEST = 10000
#: Ephemeral range assumed where /proc says nothing (Linux's default).
DEFAULT_EPHEMERAL = (32768, 60999)


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for ports it assigns itself (bind to port 0, outgoing connections)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            low, high = (int(x) for x in fh.read().split())
            return low, high
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports free on ``host`` now, outside the kernel's ephemeral range (inside
    it, as the kernel assigns them, only where that range leaves no room below or above)."""
    low, high = ephemeral_range()
    pools = [range(LOWEST, low)] if low - LOWEST >= 1000 else []
    pools += [range(high + 1, 65536)] if 65535 - high >= 1000 else []
    socks: list[socket.socket] = []
    try:
        if not pools:  # the kernel may assign any port: take what it gives, held open so they differ
            for _ in range(n):
                socks.append(_bound(host, 0))
            return [s.getsockname()[1] for s in socks]
        candidates = [p for pool in pools for p in pool]
        for port in random.SystemRandom().sample(candidates, min(len(candidates), 50 * n)):
            try:
                socks.append(_bound(host, port))
            except OSError:
                continue  # in use
            if len(socks) == n:
                return [s.getsockname()[1] for s in socks]
        raise OSError(f"no {n} free ports on {host} in {', '.join(f'{r.start}-{r.stop - 1}' for r in pools)}")
    finally:
        for s in socks:
            s.close()


def free_port(host: str = "127.0.0.1") -> int:
    """One port of :func:`free_ports`."""
    return free_ports(1, host)[0]


def _bound(host: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
    except OSError:
        s.close()
        raise
    return s
