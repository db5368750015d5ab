"""Two tunnel gateway processes side by side: a push reaches the EC whichever process has its tunnel."""

from __future__ import annotations

import socket
import sys
import time

import pytest

from gateway.push import send_to_ec
from tests.conftest import _wait_for_port, start_process, stop_process

from .helpers import RawTunnel, onboard_ec

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def second_gateway(live_stack):
    """A second run_tunnel_gateway process on the live stack's database and Redis; yields its port."""
    port = _free_port()
    process = start_process("gateway-2", [sys.executable, "manage.py", "run_tunnel_gateway", "--port", str(port)],
                            live_stack.env, live_stack.logs)
    try:
        _wait_for_port(port, process, live_stack.logs / "gateway-2.log")
        yield port
    finally:
        stop_process(process)


def _wait_for_subscribers(schema_name: str, count: int, timeout: float = 10) -> None:
    """Wait until ``count`` gateways listen on the push channel; the probe names no EC, so no tunnel gets it."""
    deadline = time.monotonic() + timeout
    while send_to_ec(schema_name, "probe:no-such-ec", {"type": "probe"}) < count:
        assert time.monotonic() < deadline, f"fewer than {count} gateways subscribed within {timeout} s"
        time.sleep(0.1)


def test_push_reaches_ec_on_either_gateway_process(world, live_stack, second_gateway, committed, tmp_path):
    on_first = onboard_ec(world.a)
    on_second = onboard_ec(world.a)
    first = RawTunnel(live_stack.tunnel_port, on_first.write_files(tmp_path / "first"))
    second = RawTunnel(second_gateway, on_second.write_files(tmp_path / "second"))
    try:
        assert first.hello(on_first.product_id)["type"] == "hello"
        assert second.hello(on_second.product_id)["type"] == "hello"
        _wait_for_subscribers(on_first.schema_name, 2)

        send_to_ec(on_first.schema_name, on_first.product_id, {"type": "probe", "to": "first"})
        send_to_ec(on_second.schema_name, on_second.product_id, {"type": "probe", "to": "second"})

        assert first.receive() == {"type": "probe", "to": "first"}
        assert second.receive() == {"type": "probe", "to": "second"}
    finally:
        first.close()
        second.close()
