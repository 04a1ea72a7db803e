"""tests/ports.py: the daemons' ports never come from the range the kernel hands out itself."""

import socket

import pytest

from tests.ports import LOWEST, ephemeral_range, free_ports

pytestmark = pytest.mark.unit


def test_free_ports_are_distinct_bindable_and_outside_the_kernels_range():
    low, high = ephemeral_range()
    ports = free_ports(6)
    assert len(set(ports)) == 6
    assert all(LOWEST <= p < low or p > high for p in ports), (ports, low, high)
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_port_the_kernel_assigns_is_never_one_of_them():
    low, high = ephemeral_range()
    with socket.socket() as s:  # what a Spark block manager or executor gets
        s.bind(("127.0.0.1", 0))
        assert low <= s.getsockname()[1] <= high
        assert s.getsockname()[1] not in free_ports(20)
