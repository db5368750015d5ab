"""Presence as the gateway records it: online with firmware and address at hello, heartbeats in batches,
offline when the tunnel closes."""

from __future__ import annotations

import time

import pytest
from django_tenants.utils import schema_context

from .helpers import onboard_ec

pytestmark = pytest.mark.e2e


def _controller(ec):
    from onboarding.models import EdgeController

    with schema_context(ec.schema_name):
        return EdgeController.objects.get(product_id=ec.product_id)


def _wait_until(condition, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_hello_marks_ec_online_with_firmware_and_address(world, gateway, connect):
    ec = onboard_ec(world.a)

    _tunnel, reply = connect(ec)

    assert reply["type"] == "hello"
    controller = _controller(ec)
    assert controller.online
    assert controller.firmware == "raw-tls"
    assert controller.tunnel_address == "127.0.0.1"
    assert controller.tunnel_connected_at is not None


def test_heartbeats_are_written_in_a_batch(world, gateway, connect):
    ec = onboard_ec(world.a)
    tunnel, _reply = connect(ec)
    connected_at = _controller(ec).last_heartbeat_at

    tunnel.send({"type": "heartbeat", "seq": 1})
    assert tunnel.receive() == {"type": "heartbeat", "seq": 1}
    gateway.call(gateway.gateway._flush_heartbeats())

    assert _controller(ec).last_heartbeat_at > connected_at


def test_closed_tunnel_marks_ec_offline(world, gateway, connect):
    ec = onboard_ec(world.a)
    tunnel, _reply = connect(ec)

    tunnel.close()

    _wait_until(lambda: not _controller(ec).online)
    controller = _controller(ec)
    assert controller.tunnel_disconnected_at >= controller.tunnel_connected_at
