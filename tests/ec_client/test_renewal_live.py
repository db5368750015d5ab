"""The EC agent renews its certificate over the tunnel of the live stack and reconnects with it."""

from __future__ import annotations

import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django_tenants.utils import schema_context

from ec_client.state import write_device
from tests.e2e.test_zero_touch_flow import _approve_when_pending, _options, _run_agent_in_thread
from tests.factories import provision_products

pytestmark = pytest.mark.e2e


def test_agent_renews_due_certificate_and_reconnects(world, live_stack, committed, tmp_path):
    from onboarding.models import EdgeController
    from pki.models import IssuedCertificate

    product_id = provision_products(world.a.msp, world.a.registration)[0]
    state_dir = tmp_path / "ec"
    write_device(state_dir, product_id, live_stack.url("localhost"), world.provisioning_key, {"model": "EC100"})
    # At fraction 1 every certificate is due, so the agent renews as soon as its tunnel is up.
    options = _options(live_stack, renew_fraction=1.0, renew_check_seconds=5)
    options.hold_seconds = 6

    outcome = _run_agent_in_thread(state_dir, options)
    _approve_when_pending(live_stack, world.a, product_id)
    outcome["thread"].join(timeout=60)
    result = outcome["result"]

    assert result.phase == "tunnel_up", result.error
    with schema_context(world.a.tenant.schema_name):
        onboarded = IssuedCertificate.objects.get(product_id=product_id, source="onboard")
        renewed = IssuedCertificate.objects.get(serial_hex=result.cert_serial)
        controller = EdgeController.objects.get(product_id=product_id)
    assert renewed.source == "tunnel_renewal"
    assert renewed.renewal_of_id == onboarded.pk
    assert onboarded.revocation_reason == "superseded"
    assert controller.tunnel_connected_at > renewed.issued_at

    stored = x509.load_pem_x509_certificate((state_dir / "cert.pem").read_bytes())
    key = serialization.load_pem_private_key((state_dir / "key.pem").read_bytes(), password=None)
    assert format(stored.serial_number, "x") == renewed.serial_hex
    assert stored.public_key() == key.public_key()
    gateway_log = (live_stack.logs / "gateway.log").read_text()
    tunnel_up = rf"Tunnel up: {re.escape(product_id)} in \S+ from \S+ \(certificate {renewed.serial_hex}\)"
    assert re.search(tunnel_up, gateway_log)
