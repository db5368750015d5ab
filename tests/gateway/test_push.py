"""The push channel and the renewal reminder, with raw TLS clients on an in-process gateway."""

from __future__ import annotations

import pytest
from cryptography import x509
from django.test import override_settings

from gateway.push import send_to_ec
from pki.tasks import remind_renewals_task

from .helpers import onboard_ec, renew_directly

pytestmark = pytest.mark.e2e

PROBE = {"type": "probe"}


def _next_is_probe(tunnel, schema_name: str, product_id: str) -> bool:
    """Push a probe behind any message already sent; return whether the probe is the next message received.

    The gateway forwards pushes in order, so anything sent earlier to this
    EC would arrive before the probe.
    """
    send_to_ec(schema_name, product_id, PROBE)
    return tunnel.receive() == PROBE


def test_push_reaches_online_ec(world, connect):
    ec = onboard_ec(world.a)
    tunnel, _hello = connect(ec)

    receivers = send_to_ec(ec.schema_name, ec.product_id, {"type": "renew_due", "not_after": "x", "reason": "test"})

    assert receivers >= 1
    assert tunnel.receive() == {"type": "renew_due", "not_after": "x", "reason": "test"}


def test_push_for_other_tenant_not_delivered(world, connect):
    ec_b = onboard_ec(world.b)
    tunnel_b, _hello = connect(ec_b)

    send_to_ec(world.a.tenant.schema_name, ec_b.product_id, {"type": "renew_due", "not_after": "x", "reason": "test"})

    assert _next_is_probe(tunnel_b, ec_b.schema_name, ec_b.product_id)


def test_push_too_large_for_tunnel_is_rejected(world):
    with pytest.raises(ValueError, match="at most 65536 bytes"):
        send_to_ec(world.a.tenant.schema_name, "EC100:x", {"type": "config", "body": "x" * 70_000})


def test_reminder_reaches_due_online_ec(world, connect):
    with override_settings(ZTSP_EC_CERT_DAYS=10):
        due = renew_directly(onboard_ec(world.a))
    tunnel, _hello = connect(due)

    remind_renewals_task()

    reminder = tunnel.receive()
    assert reminder["type"] == "renew_due", reminder
    assert reminder["reason"] == "expiring"
    leaf = x509.load_pem_x509_certificate(due.certificate_pem.encode())
    assert reminder["not_after"] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_reminder_skips_ec_not_due(world, connect):
    not_due = onboard_ec(world.a)
    tunnel, _hello = connect(not_due)

    remind_renewals_task()

    assert _next_is_probe(tunnel, not_due.schema_name, not_due.product_id)


def test_reminder_reaches_only_due_tenant(world, connect):
    """One Product ID onboarded at both tenants: only the tenant whose certificate is due reminds it."""
    with override_settings(ZTSP_EC_CERT_DAYS=10):
        due_at_a = renew_directly(onboard_ec(world.a))
    at_b = onboard_ec(world.b, due_at_a.product_id)
    tunnel_a, _hello = connect(due_at_a)
    tunnel_b, _hello = connect(at_b)

    remind_renewals_task()

    assert tunnel_a.receive()["type"] == "renew_due"
    assert _next_is_probe(tunnel_b, at_b.schema_name, at_b.product_id)


def test_reminder_leaves_out_offline_ec(world, committed):
    from django_tenants.utils import schema_context

    from gateway.reminders import send_renewal_reminders

    schema_name = world.a.tenant.schema_name
    with schema_context(schema_name):
        before = send_renewal_reminders()
    with override_settings(ZTSP_EC_CERT_DAYS=10):
        renew_directly(onboard_ec(world.a))

    with schema_context(schema_name):
        after = send_renewal_reminders()

    assert after.due == before.due + 1
    assert after.online == before.online
    assert after.published == before.published
