"""``DELETE /api/v1/msp/tenant-registrations/<id>``: refused while products are mapped, scoped per MSP."""

from __future__ import annotations

import pytest

from msp.models import TenantRegistration
from msp.services.products import map_products_to_tenant, numbered
from msp.services.registrations import delete_tenant_registration
from provisioning.models import Product
from tenants.models import Tenant
from tenants.services import tenant_access_key_matches
from tests.factories import VENDOR
from tests.msp.conftest import CLIENT_ADDRESS, audit_events, claimed_products
from tests.msp.test_registrations import register, unique_host

REGISTRATIONS_URL = "/api/v1/msp/tenant-registrations"


def detail_url(registration_id: int) -> str:
    return f"{REGISTRATIONS_URL}/{registration_id}"


def new_registration(client) -> int:
    response = register(client, f"https://{unique_host()}")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def map_to(world, registration_id: int, count: int) -> list[str]:
    product_ids = claimed_products(world.a.msp, count)
    registration = TenantRegistration.objects.get(pk=registration_id)
    map_products_to_tenant(world.a.msp, registration, numbered(product_ids), actor=VENDOR)
    return product_ids


def test_delete_unmapped_registration(world, client_a):
    registration_id = new_registration(client_a)

    response = client_a.delete(detail_url(registration_id))

    assert response.status_code == 204, response.content
    assert not TenantRegistration.objects.filter(pk=registration_id).exists()
    assert client_a.get(detail_url(registration_id)).status_code == 404


def test_delete_writes_audit_event(world, client_a):
    host = unique_host()
    registration_id = register(client_a, f"https://{host}", name="Old branch").json()["id"]

    client_a.delete(detail_url(registration_id))

    event = audit_events("tenant_registration.delete", str(registration_id)).get()
    assert event.msp_id == world.a.msp.pk
    assert event.actor_type == "msp_token"
    assert event.source_address == CLIENT_ADDRESS
    assert event.details == {"name": "Old branch", "management_url": f"https://{host}"}


def test_delete_mapped_registration_conflicts(world, client_a):
    registration_id = new_registration(client_a)
    map_to(world, registration_id, 2)

    response = client_a.delete(detail_url(registration_id))

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "registration_in_use"
    assert body["detail"].startswith("2 products are mapped")
    assert "/api/v1/msp/products/unmap" in body["detail"]
    assert TenantRegistration.objects.filter(pk=registration_id).exists()
    assert not audit_events("tenant_registration.delete", str(registration_id)).exists()


def test_delete_one_mapped_product_says_singular(world, client_a):
    registration_id = new_registration(client_a)
    map_to(world, registration_id, 1)

    body = client_a.delete(detail_url(registration_id)).json()

    assert body["detail"].startswith("1 product is mapped")


def test_delete_after_unmap_succeeds(world, client_a):
    registration_id = new_registration(client_a)
    product_ids = map_to(world, registration_id, 2)
    client_a.post("/api/v1/msp/products/unmap", {"product_ids": product_ids}, format="json")

    response = client_a.delete(detail_url(registration_id))

    assert response.status_code == 204, response.content


def test_delete_keeps_hosted_tenant(world, client_a):
    # Products that earlier live-stack tests mapped and committed are unmapped inside this test's transaction.
    Product.objects.filter(tenant_registration=world.a.registration).update(tenant_registration=None,
                                                                            mapped_at=None)

    response = client_a.delete(detail_url(world.a.registration.pk))

    assert response.status_code == 204, response.content
    stored = Tenant.objects.get(pk=world.a.tenant.pk)
    assert tenant_access_key_matches(stored, world.a.tenant_access_key)


def test_delete_other_msp_not_found(world, client_a, client_b):
    registration_id = new_registration(client_a)

    response = client_b.delete(detail_url(registration_id))

    assert response.status_code == 404
    assert response.json()["code"] == "tenant_registration_not_found"
    assert TenantRegistration.objects.filter(pk=registration_id).exists()
    assert not audit_events("tenant_registration.delete", str(registration_id)).exists()


def test_delete_other_msp_mapped_not_found(world, client_b):
    # Another MSP learns nothing about the products of a registration, not even that it is in use.
    map_to(world, world.a.registration.pk, 1)

    response = client_b.delete(detail_url(world.a.registration.pk))

    assert response.status_code == 404
    assert response.json()["code"] == "tenant_registration_not_found"


def test_delete_other_msp_matches_missing_id(world, client_a, client_b):
    registration_id = new_registration(client_a)
    missing_id = registration_id + 1000

    other = client_b.delete(detail_url(registration_id)).json()
    missing = client_b.delete(detail_url(missing_id)).json()

    assert other["code"] == missing["code"]
    assert other["detail"].replace(str(registration_id), "ID") == missing["detail"].replace(str(missing_id), "ID")


def test_map_to_deleted_registration_rejected(world, client_a):
    registration_id = new_registration(client_a)
    stale = TenantRegistration.objects.get(pk=registration_id)
    delete_tenant_registration(stale, actor=VENDOR)
    product_ids = claimed_products(world.a.msp, 1)

    with pytest.raises(TenantRegistration.DoesNotExist):
        map_products_to_tenant(world.a.msp, stale, numbered(product_ids), actor=VENDOR)
