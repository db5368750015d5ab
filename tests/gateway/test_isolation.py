"""One tunnel's faults, another tenant's CA and a second gateway process leave the other tunnels alone."""

from __future__ import annotations

import time
import uuid

import pytest
from django.conf import settings
from django_tenants.utils import schema_context

from gateway.push import send_to_ec
from gateway.server import MAX_LINE_BYTES

from .helpers import GatewayThread, IssuedEc, RawTunnel, onboard_ec

pytestmark = pytest.mark.e2e

PROBE = {"type": "probe"}


def _heartbeat_echoed(tunnel: RawTunnel, seq: int) -> bool:
    tunnel.send({"type": "heartbeat", "seq": seq})
    return tunnel.receive() == {"type": "heartbeat", "seq": seq}


def _receive_until_closed(tunnel: RawTunnel) -> list[dict]:
    """Return the messages received until the gateway closes the connection (at most five)."""
    received = []
    for _ in range(5):
        message = tunnel.receive()
        if message is None:
            return received
        received.append(message)
    raise AssertionError(f"the gateway kept the connection open after {received!r}")


def _certificate_from_ca_of(persona, product_id: str) -> IssuedEc:
    """Sign a certificate for ``product_id`` with ``persona``'s issuing CA key, without recording it there."""
    from pki import crypto
    from pki.services import active_issuing_ca, ca_chain_pem, signer_for
    from tests.factories import make_csr

    csr_pem, key = make_csr(product_id)
    schema_name = persona.tenant.schema_name
    with schema_context(schema_name):
        issuing_ca = active_issuing_ca()
        certificate = crypto.issue_ec_certificate(
            signer_for(issuing_ca), crypto.load_certificate(issuing_ca.certificate_pem),
            crypto.parse_csr_pem(csr_pem), product_id, valid_days=settings.ZTSP_EC_CERT_DAYS, crl_url=None,
        )
        chain = ca_chain_pem(issuing_ca)
    return IssuedEc(schema_name, product_id, key, crypto.cert_to_pem(certificate), chain)


def _online(ec: IssuedEc) -> bool:
    from onboarding.models import EdgeController

    with schema_context(ec.schema_name):
        return EdgeController.objects.get(product_id=ec.product_id).online


def test_malformed_message_closes_only_its_tunnel(world, connect):
    faulty, _hello = connect(onboard_ec(world.a))
    healthy, _hello = connect(onboard_ec(world.a))

    faulty.tls.sendall(b"this is not JSON\n")

    received = _receive_until_closed(faulty)
    assert [message.get("code") for message in received] == ["invalid_message"]
    assert _heartbeat_echoed(healthy, 1)


def test_oversized_line_closes_only_its_tunnel(world, connect):
    faulty, _hello = connect(onboard_ec(world.a))
    healthy, _hello = connect(onboard_ec(world.a))

    # A JSON string, so that only the length is wrong with the line.
    faulty.tls.sendall(b'"' + b"x" * MAX_LINE_BYTES + b'"\n')

    received = _receive_until_closed(faulty)
    assert [message.get("code") for message in received] == ["invalid_message"]
    assert _heartbeat_echoed(healthy, 1)


def test_certificate_from_other_tenant_ca_rejected(world, connect, tmp_path):
    ec_a = onboard_ec(world.a)
    forged = _certificate_from_ca_of(world.b, ec_a.product_id)

    tunnel, reply = connect(forged)

    assert reply is not None
    assert reply["type"] == "error"
    assert reply["code"] == "unknown_certificate"
    assert tunnel.receive() is None
    assert not _online(ec_a)


def test_same_product_id_at_other_tenant_stays_apart(world, connect):
    ec_a = onboard_ec(world.a)
    ec_b = onboard_ec(world.b, ec_a.product_id)
    tunnel_a, hello_a = connect(ec_a)

    tunnel_b, hello_b = connect(ec_b)

    assert hello_a["tenant"] == world.a.tenant.schema_name
    assert hello_b["tenant"] == world.b.tenant.schema_name
    assert _heartbeat_echoed(tunnel_a, 1)
    assert _heartbeat_echoed(tunnel_b, 1)


@pytest.fixture
def two_gateways(world, committed, monkeypatch):
    """Two in-process gateways on their own ports, both subscribed to the same push channel.

    The channel is private to the test, so a gateway of the live test stack, which may be running, is
    not counted among the receivers. Each one's push deliveries are recorded as (Product ID, whether a
    tunnel there took the message).
    """
    from gateway import push

    private_channel = f"{push.channel_name()}:isolation-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(push, "channel_name", lambda: private_channel)
    gateways = [GatewayThread().start(), GatewayThread().start()]
    for running in gateways:
        running.deliveries = []
        listener = running.gateway.push_listener
        deliver = listener._deliver

        async def recording_deliver(schema_name, product_id, message, deliver=deliver, running=running):
            delivered = await deliver(schema_name, product_id, message)
            running.deliveries.append((product_id, delivered))
            return delivered

        listener._deliver = recording_deliver
    yield gateways
    for running in gateways:
        running.stop()


def _open(gateway: GatewayThread, ec: IssuedEc, folder) -> RawTunnel:
    tunnel = RawTunnel(gateway.port, ec.write_files(folder))
    reply = tunnel.hello(ec.product_id)
    assert reply is not None and reply["type"] == "hello", reply
    return tunnel


def test_push_reaches_ec_on_either_gateway(world, two_gateways, tmp_path):
    first, second = two_gateways
    ec_first = onboard_ec(world.a)
    ec_second = onboard_ec(world.a)
    tunnel_first = _open(first, ec_first, tmp_path / "first")
    tunnel_second = _open(second, ec_second, tmp_path / "second")
    try:
        receivers_first = send_to_ec(ec_first.schema_name, ec_first.product_id, {"type": "config", "version": 1})
        receivers_second = send_to_ec(ec_second.schema_name, ec_second.product_id, {"type": "config", "version": 2})

        assert receivers_first == 2
        assert receivers_second == 2
        assert tunnel_first.receive() == {"type": "config", "version": 1}
        assert tunnel_second.receive() == {"type": "config", "version": 2}
    finally:
        tunnel_first.close()
        tunnel_second.close()


def test_push_ignored_by_gateway_without_tunnel(world, two_gateways, tmp_path):
    first, second = two_gateways
    ec = onboard_ec(world.a)
    tunnel = _open(first, ec, tmp_path / "ec")
    try:
        send_to_ec(ec.schema_name, ec.product_id, {"type": "config", "version": 1})
        assert tunnel.receive() == {"type": "config", "version": 1}
        # The probe arrives after the message only if no gateway sent the message twice.
        send_to_ec(ec.schema_name, ec.product_id, PROBE)
        assert tunnel.receive() == PROBE
    finally:
        tunnel.close()

    # Each gateway runs its own loop, so the second may still be handling the messages.
    deadline = time.monotonic() + 10
    while len(second.deliveries) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (ec.product_id, True) in first.deliveries
    assert (ec.product_id, True) not in second.deliveries
    assert (ec.product_id, False) in second.deliveries
