"""Rotating a tenant access key: the grace period at the Director and the MSP API's rotate endpoint."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from common import tokens
from msp.models import TenantRegistration
from tenants.models import Tenant
from tenants.services import rotate_tenant_access_key, tenant_access_key_matches
from tests.factories import VENDOR, make_csr, new_product_id, provision_products
from tests.msp.conftest import CLIENT_ADDRESS, audit_events, bearer_client, row_text
from tests.msp.test_registrations import new_access_key, register, unique_host
from tests.onboarding.helpers import post_onboard

REGISTRATIONS_URL = "/api/v1/msp/tenant-registrations"


def rotate_url(registration_id: int) -> str:
    return f"{REGISTRATIONS_URL}/{registration_id}/rotate"


def tenant(persona) -> Tenant:
    """Return the persona's tenant as stored now (the world's object is not refreshed)."""
    return Tenant.objects.get(pk=persona.tenant.pk)


def end_grace(persona) -> None:
    Tenant.objects.filter(pk=persona.tenant.pk).update(
        previous_key_valid_until=timezone.now() - timedelta(seconds=1))


def onboard_status(persona, access_key: str) -> int:
    product_id = new_product_id()
    csr, _key = make_csr(product_id)
    body = {"product_id": product_id, "csr": csr, "facts": {"firmware": "1.2.0"}}
    return post_onboard(persona.domain, access_key, body).status_code


# --- the Director: rotate_tenant_access_key and tenant_access_key_matches ---------------------


def test_rotate_new_key_matches(world):
    new_key = rotate_tenant_access_key(tenant(world.a), actor=VENDOR, grace_seconds=60)

    assert tenant_access_key_matches(tenant(world.a), new_key)


def test_rotate_old_key_matches_during_grace(world):
    rotate_tenant_access_key(tenant(world.a), actor=VENDOR, grace_seconds=60)

    assert tenant_access_key_matches(tenant(world.a), world.a.tenant_access_key)


def test_rotate_old_key_rejected_after_grace(world):
    new_key = rotate_tenant_access_key(tenant(world.a), actor=VENDOR, grace_seconds=60)
    end_grace(world.a)

    assert not tenant_access_key_matches(tenant(world.a), world.a.tenant_access_key)
    assert tenant_access_key_matches(tenant(world.a), new_key)


def test_rotate_zero_grace_stops_old_key(world):
    rotate_tenant_access_key(tenant(world.a), actor=VENDOR, grace_seconds=0)

    stored = tenant(world.a)
    assert not tenant_access_key_matches(stored, world.a.tenant_access_key)
    assert stored.previous_access_key_hash == ""
    assert stored.previous_key_valid_until is None


def test_rotate_default_grace_follows_setting(world):
    before = timezone.now()

    with override_settings(ZTSP_TENANT_KEY_GRACE_SECONDS=120):
        rotate_tenant_access_key(tenant(world.a), actor=VENDOR)

    valid_until = tenant(world.a).previous_key_valid_until
    assert before + timedelta(seconds=120) <= valid_until <= timezone.now() + timedelta(seconds=120)


def test_rotate_twice_drops_oldest_key(world):
    second_key = rotate_tenant_access_key(tenant(world.a), actor=VENDOR, grace_seconds=60)

    third_key = rotate_tenant_access_key(tenant(world.a), actor=VENDOR, grace_seconds=60)

    stored = tenant(world.a)
    assert not tenant_access_key_matches(stored, world.a.tenant_access_key)
    assert tenant_access_key_matches(stored, second_key)
    assert tenant_access_key_matches(stored, third_key)


def test_rotate_rejects_negative_grace(world):
    with pytest.raises(ValueError, match="grace_seconds"):
        rotate_tenant_access_key(tenant(world.a), actor=VENDOR, grace_seconds=-1)

    assert tenant_access_key_matches(tenant(world.a), world.a.tenant_access_key)


def test_previous_key_of_other_tenant_rejected(world):
    rotate_tenant_access_key(tenant(world.b), actor=VENDOR, grace_seconds=60)

    assert not tenant_access_key_matches(tenant(world.a), world.b.tenant_access_key)


def test_rotate_stores_previous_key_as_hash(world):
    rotate_tenant_access_key(tenant(world.a), actor=VENDOR, grace_seconds=60)

    stored = row_text(Tenant._meta.db_table, world.a.tenant.pk)
    assert world.a.tenant_access_key not in stored
    assert world.a.tenant_access_key.split("_", 3)[3] not in stored


def test_rotate_audits_key_ids(world):
    new_key = rotate_tenant_access_key(tenant(world.a), actor=VENDOR, grace_seconds=60)

    event = audit_events("tenant.rotate_key", "acme").get()
    assert event.details["key_id"] == tenant(world.a).access_key_id
    assert event.details["previous_key_id"] == world.a.tenant.access_key_id
    assert event.details["previous_key_valid_until"]
    assert new_key not in row_text(event._meta.db_table, event.pk)


# --- the onboard API during and after the grace period -----------------------------------------


def test_onboard_accepts_old_key_during_grace(world, client_a):
    response = client_a.post(rotate_url(world.a.registration.pk), {}, format="json")
    assert response.status_code == 200, response.content

    assert onboard_status(world.a, world.a.tenant_access_key) == 202
    assert onboard_status(world.a, response.json()["access_key"]) == 202


def test_onboard_rejects_old_key_after_grace(world, client_a):
    new_key = client_a.post(rotate_url(world.a.registration.pk), {}, format="json").json()["access_key"]
    end_grace(world.a)

    assert onboard_status(world.a, world.a.tenant_access_key) == 401
    assert onboard_status(world.a, new_key) == 202


def test_onboard_rejects_old_key_after_zero_grace(world, client_a):
    new_key = client_a.post(rotate_url(world.a.registration.pk), {"grace_seconds": 0},
                            format="json").json()["access_key"]

    assert onboard_status(world.a, world.a.tenant_access_key) == 401
    assert onboard_status(world.a, new_key) == 202


# --- POST /api/v1/msp/tenant-registrations/<id>/rotate -----------------------------------------


def test_rotate_endpoint_returns_new_key(world, client_a):
    before = timezone.now()

    response = client_a.post(rotate_url(world.a.registration.pk), {}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    stored = tenant(world.a)
    assert body["tenant_registration"] == world.a.registration.pk
    assert body["management_url"] == world.a.registration.management_url
    assert body["key_id"] == stored.access_key_id
    assert body["access_key"].startswith(f"ztsp_tk_{stored.access_key_id}_")
    assert body["access_key"] != world.a.tenant_access_key
    assert tenant_access_key_matches(stored, body["access_key"])
    assert stored.previous_key_valid_until >= before + timedelta(hours=1) - timedelta(seconds=1)


def test_rotate_endpoint_without_body(world, client_a):
    response = client_a.post(rotate_url(world.a.registration.pk))

    assert response.status_code == 200, response.content
    assert tenant_access_key_matches(tenant(world.a), response.json()["access_key"])


def test_rotate_endpoint_stores_new_key_encrypted(world, client_a):
    new_key = client_a.post(rotate_url(world.a.registration.pk), {}, format="json").json()["access_key"]

    registration = TenantRegistration.objects.get(pk=world.a.registration.pk)
    assert tokens.decrypt(registration.access_key_encrypted).decode() == new_key
    assert new_key not in row_text(TenantRegistration._meta.db_table, registration.pk)


def test_rotate_endpoint_key_reaches_lookup(world, client_a):
    [product_id] = provision_products(world.a.msp, world.a.registration)

    new_key = client_a.post(rotate_url(world.a.registration.pk), {}, format="json").json()["access_key"]
    response = bearer_client(world.provisioning_key).post("/api/v1/ztp/lookup", {"product_id": product_id},
                                                          format="json")

    assert response.json()["access_key"] == new_key


def test_rotate_endpoint_audits_both_sides(world, client_a):
    new_key = client_a.post(rotate_url(world.a.registration.pk), {}, format="json").json()["access_key"]

    director_event = audit_events("tenant.rotate_key", "acme").get()
    registration_event = audit_events("tenant_registration.rotate_key", str(world.a.registration.pk)).get()
    for event in (director_event, registration_event):
        assert event.msp_id == world.a.msp.pk
        assert event.actor_type == "msp_token"
        assert event.source_address == CLIENT_ADDRESS
        assert new_key not in row_text(event._meta.db_table, event.pk)
        assert world.a.tenant_access_key not in row_text(event._meta.db_table, event.pk)
    assert registration_event.details["schema_name"] == "acme"
    assert registration_event.details["key_id"] == tenant(world.a).access_key_id


def test_rotate_endpoint_grace_seconds(world, client_a):
    before = timezone.now()

    response = client_a.post(rotate_url(world.a.registration.pk), {"grace_seconds": 300}, format="json")

    valid_until = tenant(world.a).previous_key_valid_until
    assert response.status_code == 200, response.content
    assert before + timedelta(seconds=300) <= valid_until <= timezone.now() + timedelta(seconds=300)


def test_rotate_endpoint_zero_grace_returns_null(world, client_a):
    response = client_a.post(rotate_url(world.a.registration.pk), {"grace_seconds": 0}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["previous_key_valid_until"] is None


@pytest.mark.parametrize("grace", [-1, 3601, "soon"])
def test_rotate_endpoint_rejects_bad_grace(world, client_a, grace):
    response = client_a.post(rotate_url(world.a.registration.pk), {"grace_seconds": grace}, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["grace_seconds"]
    assert tenant(world.a).access_key_id == world.a.tenant.access_key_id


def test_rotate_other_msp_not_found(world, client_b):
    before = tenant(world.a)

    response = client_b.post(rotate_url(world.a.registration.pk), {}, format="json")

    assert response.status_code == 404
    assert response.json()["code"] == "tenant_registration_not_found"
    assert "access_key" not in response.json()
    assert tenant(world.a).access_key_hash == before.access_key_hash
    assert not audit_events("tenant.rotate_key", "acme").exists()


def test_rotate_other_msp_matches_missing_id(world, client_b):
    missing_id = TenantRegistration.objects.order_by("-pk").first().pk + 1000

    other = client_b.post(rotate_url(world.a.registration.pk), {}, format="json").json()
    missing = client_b.post(rotate_url(missing_id), {}, format="json").json()

    assert other["code"] == missing["code"]
    assert other["detail"].replace(str(world.a.registration.pk), "ID") == missing["detail"].replace(
        str(missing_id), "ID")


def test_rotate_external_director_conflicts(world, client_a):
    old_key = new_access_key()
    registration_id = register(client_a, f"https://{unique_host()}", access_key=old_key).json()["id"]

    response = client_a.post(rotate_url(registration_id), {}, format="json")

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "not_hosted_here"
    assert "PATCH" in body["detail"]
    assert f"{REGISTRATIONS_URL}/{registration_id}" in body["detail"]
    assert "access_key" not in body
    registration = TenantRegistration.objects.get(pk=registration_id)
    assert tokens.decrypt(registration.access_key_encrypted).decode() == old_key
    assert not audit_events("tenant_registration.rotate_key", str(registration_id)).exists()


def test_rotate_same_host_other_port_conflicts(world, client_a):
    # A Director elsewhere may serve the same host name on another port; only the exact URL is hosted here.
    registration_id = register(client_a, f"https://{world.a.domain}:9").json()["id"]

    response = client_a.post(rotate_url(registration_id), {}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "not_hosted_here"
    assert tenant(world.a).access_key_id == world.a.tenant.access_key_id


def test_rotate_without_director_role_conflicts(world, client_a):
    with override_settings(DIRECTOR_ROLE=False):
        response = client_a.post(rotate_url(world.a.registration.pk), {}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "not_hosted_here"


def test_rotate_tenant_of_other_owner_conflicts(world, client_a):
    # A tenant made with create_hosted_tenant but no --msp belongs to the vendor, not to the registering MSP.
    Tenant.objects.filter(pk=world.a.tenant.pk).update(owner_msp=None)

    response = client_a.post(rotate_url(world.a.registration.pk), {}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "tenant_not_owned"
    assert tenant(world.a).access_key_id == world.a.tenant.access_key_id


def test_rotate_rejects_anonymous(world):
    from rest_framework.test import APIClient

    response = APIClient(HTTP_HOST="localhost").post(rotate_url(world.a.registration.pk), {}, format="json")

    assert response.status_code in (401, 403)
    assert tenant(world.a).access_key_id == world.a.tenant.access_key_id
