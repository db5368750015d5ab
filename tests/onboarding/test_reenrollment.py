"""An onboarded EC that enrolls again: after a factory reset (new key) or an expiry while offline (same key)."""

from __future__ import annotations

from django_tenants.utils import schema_context

from tests.onboarding.helpers import active_certificates, approve_and_issue, onboard


def _request(schema: str, request_id: str):
    from onboarding.models import OnboardRequest

    with schema_context(schema):
        return OnboardRequest.objects.get(pk=request_id)


def test_new_key_after_certificate_is_flagged_key_change(world):
    first = onboard(world.a)
    approve_and_issue("acme", first.request_id)

    reset = onboard(world.a, first.product_id)

    row = _request("acme", reset.request_id)
    assert row.conflict
    assert row.key_change


def test_same_key_after_certificate_is_not_a_key_change(world):
    first = onboard(world.a)
    approve_and_issue("acme", first.request_id)

    again = onboard(world.a, first.product_id, key=first.key)

    row = _request("acme", again.request_id)
    assert row.conflict
    assert not row.key_change


def test_second_pending_request_before_any_certificate_is_not_a_key_change(world):
    first = onboard(world.a)

    second = onboard(world.a, first.product_id)

    assert not _request("acme", second.request_id).key_change


def test_reenrollment_is_matched_to_existing_ec(world):
    from onboarding.models import EdgeController

    first = onboard(world.a)
    approve_and_issue("acme", first.request_id)
    reset = onboard(world.a, first.product_id)

    with schema_context("acme"):
        assert EdgeController.objects.filter(product_id=first.product_id).count() == 1
        assert _request("acme", reset.request_id).edge_controller_id == \
            _request("acme", first.request_id).edge_controller_id


def test_approving_reenrollment_revokes_old_certificate_as_superseded(world):
    from pki.models import IssuedCertificate

    first = onboard(world.a)
    approve_and_issue("acme", first.request_id)
    old_serial = active_certificates("acme", first.product_id)[0].serial_hex
    reset = onboard(world.a, first.product_id)

    approve_and_issue("acme", reset.request_id)

    with schema_context("acme"):
        old = IssuedCertificate.objects.get(serial_hex=old_serial)
    assert old.revocation_reason == "superseded"
    [active] = active_certificates("acme", first.product_id)
    assert str(active.onboard_request_id) == reset.request_id


def test_reenrollment_after_expiry_issues_a_fresh_certificate(world):
    from datetime import timedelta

    from django.utils import timezone

    from pki.models import IssuedCertificate

    first = onboard(world.a)
    approve_and_issue("acme", first.request_id)
    with schema_context("acme"):
        IssuedCertificate.objects.filter(product_id=first.product_id).update(
            not_after=timezone.now() - timedelta(days=1))
    again = onboard(world.a, first.product_id, key=first.key)

    approve_and_issue("acme", again.request_id)

    [active] = active_certificates("acme", first.product_id)
    assert active.not_after > timezone.now() + timedelta(days=1)


def test_request_from_decommissioned_ec_is_flagged(world):
    from audit.services import Actor
    from onboarding.models import EdgeController
    from onboarding.services_portal import decommission_edge_controller

    first = onboard(world.a)
    approve_and_issue("acme", first.request_id)
    with schema_context("acme"):
        decommission_edge_controller(EdgeController.objects.get(product_id=first.product_id),
                                     actor=Actor.system("reenrollment-tests"))

    again = onboard(world.a, first.product_id, key=first.key)

    assert _request("acme", again.request_id).conflict
