"""Malformed lines on an open management tunnel: each gets ``invalid_message`` and only its tunnel closes."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import connect, gateway  # noqa: F401 - fixtures used by name
from tests.gateway.helpers import RawTunnel, onboard_ec

# The gateway runs in a thread with its own database connection, so the ECs are committed.
pytestmark = pytest.mark.e2e


def _receive_until_closed(tunnel: RawTunnel) -> list[dict]:
    """Return the messages received until the gateway closes the connection (at most five)."""
    received = []
    for _ in range(5):
        message = tunnel.receive()
        if message is None:
            return received
        received.append(message)
    raise AssertionError(f"the gateway kept the connection open after {received!r}")


@pytest.mark.parametrize("line", [
    b"[" * 5000 + b"]" * 5000 + b"\n",
    b'{"type": "heartbeat", "seq": ' + b"[" * 5000 + b"]" * 5000 + b"}\n",
    b"[1, 2]\n",
    b'"heartbeat"\n',
    b"\xff\xfe\n",
    b'{"type": "heartbeat", "seq": NaN\n',
], ids=["deep_list", "deep_value", "json_list", "json_string", "invalid_utf8", "truncated"])
def test_malformed_line_closes_only_its_tunnel(world, connect, line):  # noqa: F811
    faulty, _hello = connect(onboard_ec(world.a))
    healthy, _hello = connect(onboard_ec(world.a))

    faulty.tls.sendall(line)

    received = _receive_until_closed(faulty)
    assert [message.get("code") for message in received] == ["invalid_message"]
    healthy.send({"type": "heartbeat", "seq": 1})
    assert healthy.receive() == {"type": "heartbeat", "seq": 1}


@pytest.mark.parametrize(("message", "code"), [
    ({"type": "ack", "version": 10**30, "status": "applied"}, "invalid_ack"),
    ({"type": "ack", "version": 2**31, "status": "applied"}, "invalid_ack"),
    ({"type": "ack", "version": 1, "status": "failed", "detail": "disk\x00full"}, "invalid_ack"),
    ({"type": "ack", "version": "1", "status": "applied"}, "invalid_ack"),
    ({"type": "ack", "version": 1, "status": {"applied": True}}, "invalid_ack"),
    ({"type": "renew", "csr": ["-----BEGIN CERTIFICATE REQUEST-----"]}, "csr_malformed"),
    ({"type": "renew", "csr": "not a CSR"}, "csr_malformed"),
    ({"type": ["heartbeat"]}, "unknown_type"),
    ({"type": "hello"}, "unknown_type"),
], ids=["version_over_column", "version_2_31", "nul_detail", "version_string", "status_object", "csr_list",
        "csr_text", "type_list", "second_hello"])
def test_invalid_message_gets_error_and_tunnel_stays(world, connect, message, code):  # noqa: F811
    tunnel, _hello = connect(onboard_ec(world.a))

    tunnel.send(message)

    reply = tunnel.receive()
    assert reply["type"] == "error", reply
    assert reply["code"] == code, reply
    tunnel.send({"type": "heartbeat", "seq": 2})
    assert tunnel.receive() == {"type": "heartbeat", "seq": 2}
