"""Mapping claimed products to a tenant registration, unmapping them, and the ZTP lookup that follows."""

from __future__ import annotations

from msp.services.products import NOT_YOURS
from provisioning.models import Product
from tests.factories import new_product_id
from tests.msp.conftest import CLIENT_ADDRESS, allocated_products, audit_events, bearer_client, claimed_products

MAP_URL = "/api/v1/msp/products/map"
UNMAP_URL = "/api/v1/msp/products/unmap"
LOOKUP_URL = "/api/v1/ztp/lookup"


def map_products(client, registration_id: int, product_ids: list[str]):
    return client.post(MAP_URL, {"tenant_registration": registration_id, "product_ids": product_ids}, format="json")


def lookup(world, product_id: str):
    return bearer_client(world.provisioning_key).post(LOOKUP_URL, {"product_id": product_id}, format="json")


def test_map_assigns_registration(world, client_a):
    product_ids = claimed_products(world.a.msp, 2)

    response = map_products(client_a, world.a.registration.pk, product_ids)

    assert response.status_code == 200, response.content
    assert response.json() == {"changed": 2, "unchanged": 0, "rejected": []}
    for product in Product.objects.filter(product_id__in=product_ids):
        assert product.tenant_registration_id == world.a.registration.pk
        assert product.mapped_at is not None


def test_map_rejects_unclaimed_product(world, client_a):
    [unclaimed] = allocated_products(world.a.msp)

    body = map_products(client_a, world.a.registration.pk, [unclaimed]).json()

    assert body["changed"] == 0
    assert body["rejected"] == [{"position": 1, "value": unclaimed, "reason": "not claimed yet; claim it first"}]
    assert Product.objects.get(product_id=unclaimed).tenant_registration_id is None


def test_map_rejects_product_of_other_msp(world, client_a):
    [other] = claimed_products(world.b.msp)
    unknown = new_product_id()

    body = map_products(client_a, world.a.registration.pk, [other, unknown]).json()

    assert [item["reason"] for item in body["rejected"]] == [NOT_YOURS, NOT_YOURS]
    assert Product.objects.get(product_id=other).tenant_registration_id is None


def test_map_to_other_msp_registration_not_found(world, client_a):
    [own] = claimed_products(world.a.msp)
    events_before = audit_events("product.map", own).count()

    response = map_products(client_a, world.b.registration.pk, [own])

    assert response.status_code == 404
    assert response.json()["code"] == "tenant_registration_not_found"
    assert Product.objects.get(product_id=own).tenant_registration_id is None
    assert audit_events("product.map", own).count() == events_before


def test_map_other_registration_like_missing(world, client_a):
    # A registration of another MSP must be indistinguishable from an id that does not exist.
    [own] = claimed_products(world.a.msp)
    missing_id = world.a.registration.pk + world.b.registration.pk + 10_000

    other = map_products(client_a, world.b.registration.pk, [own])
    missing = map_products(client_a, missing_id, [own])

    assert other.status_code == missing.status_code == 404
    assert other.json()["code"] == missing.json()["code"]


def test_map_again_reports_unchanged(world, client_a):
    [own] = claimed_products(world.a.msp)
    map_products(client_a, world.a.registration.pk, [own])

    body = map_products(client_a, world.a.registration.pk, [own]).json()

    assert body == {"changed": 0, "unchanged": 1, "rejected": []}


def test_map_requires_registration_field(world, client_a):
    [own] = claimed_products(world.a.msp)

    response = client_a.post(MAP_URL, {"product_ids": [own]}, format="json")

    assert response.status_code == 400
    assert "tenant_registration" in response.json()["errors"]


def test_map_writes_audit_event(world, client_a):
    [own] = claimed_products(world.a.msp)

    map_products(client_a, world.a.registration.pk, [own])

    event = audit_events("product.map", own).get()
    assert event.msp_id == world.a.msp.pk
    assert event.actor_type == "msp_token"
    assert event.source_address == CLIENT_ADDRESS
    assert event.details["tenant_registration"] == world.a.registration.pk
    assert event.details["management_url"] == world.a.registration.management_url


def test_lookup_after_map_returns_registration_url(world, client_a):
    [own] = claimed_products(world.a.msp)
    map_products(client_a, world.a.registration.pk, [own])

    response = lookup(world, own)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["product_id"] == own
    assert body["director_url"] == world.a.registration.management_url
    assert body["access_key"] == world.a.tenant_access_key


def test_lookup_before_map_reports_not_mapped(world):
    [own] = claimed_products(world.a.msp)

    response = lookup(world, own)

    assert response.status_code == 409
    assert response.json()["code"] == "not_mapped"


def test_unmap_clears_mapping(world, client_a):
    [own] = claimed_products(world.a.msp)
    map_products(client_a, world.a.registration.pk, [own])

    response = client_a.post(UNMAP_URL, {"product_ids": [own]}, format="json")

    assert response.json() == {"changed": 1, "unchanged": 0, "rejected": []}
    product = Product.objects.get(product_id=own)
    assert product.tenant_registration_id is None
    assert product.mapped_at is None
    assert product.claimed_at is not None


def test_lookup_after_unmap_reports_not_mapped(world, client_a):
    [own] = claimed_products(world.a.msp)
    map_products(client_a, world.a.registration.pk, [own])
    client_a.post(UNMAP_URL, {"product_ids": [own]}, format="json")

    response = lookup(world, own)

    assert response.status_code == 409
    assert response.json()["code"] == "not_mapped"


def test_unmap_rejects_product_of_other_msp(world, client_a, client_b):
    [other] = claimed_products(world.b.msp)
    map_products(client_b, world.b.registration.pk, [other])

    body = client_a.post(UNMAP_URL, {"product_ids": [other]}, format="json").json()

    assert body["rejected"] == [{"position": 1, "value": other, "reason": NOT_YOURS}]
    assert Product.objects.get(product_id=other).tenant_registration_id == world.b.registration.pk


def test_unmap_of_unmapped_reports_unchanged(world, client_a):
    [own] = claimed_products(world.a.msp)

    body = client_a.post(UNMAP_URL, {"product_ids": [own]}, format="json").json()

    assert body == {"changed": 0, "unchanged": 1, "rejected": []}


def test_unmap_accepts_csv(world, client_a):
    own = claimed_products(world.a.msp, 2)
    map_products(client_a, world.a.registration.pk, own)

    response = client_a.post(UNMAP_URL, "\r\n".join(own).encode(), content_type="text/csv")

    assert response.json() == {"changed": 2, "unchanged": 0, "rejected": []}


def test_unmap_writes_audit_event(world, client_a):
    [own] = claimed_products(world.a.msp)
    map_products(client_a, world.a.registration.pk, [own])

    client_a.post(UNMAP_URL, {"product_ids": [own]}, format="json")

    event = audit_events("product.unmap", own).get()
    assert event.msp_id == world.a.msp.pk
    assert event.source_address == CLIENT_ADDRESS
