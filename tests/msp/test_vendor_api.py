"""The vendor's staff endpoints: listing and creating MSPs, and allocating products to them."""

from __future__ import annotations

from rest_framework.test import APIClient

from msp.models import MSP
from provisioning.models import Product
from tests.conftest import ADMIN_PASSWORD
from tests.factories import new_product_id
from tests.msp.conftest import (
    CLIENT_ADDRESS,
    allocated_products,
    audit_events,
    basic_client,
    bearer_client,
    imported_products,
)

MSPS_URL = "/api/v1/vendor/msps"


def allocate_url(slug: str) -> str:
    return f"{MSPS_URL}/{slug}/allocate"


def test_vendor_lists_msps(world, vendor_client):
    response = vendor_client.get(MSPS_URL)

    assert response.status_code == 200
    slugs = {row["slug"] for row in response.json()}
    assert {world.a.msp.slug, world.b.msp.slug} <= slugs


def test_vendor_basic_auth_lists_msps(world):
    response = basic_client(world.vendor_admin.username, ADMIN_PASSWORD).get(MSPS_URL)

    assert response.status_code == 200


def test_vendor_creates_msp(world, vendor_client):
    response = vendor_client.post(MSPS_URL, {"name": "Initech Networks"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "initech-networks"
    assert body["is_active"] is True
    assert MSP.objects.filter(pk=body["id"], name="Initech Networks").exists()


def test_vendor_creates_msp_with_slug(world, vendor_client):
    response = vendor_client.post(MSPS_URL, {"name": "Umbrella", "slug": "umb"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["slug"] == "umb"


def test_msp_creation_audited(world, vendor_client):
    slug = vendor_client.post(MSPS_URL, {"name": "Audited MSP"}, format="json").json()["slug"]

    event = audit_events("msp.create", slug).get()
    assert event.actor == world.vendor_admin.username
    assert event.actor_type == "user"
    assert event.source_address == CLIENT_ADDRESS
    assert event.msp_id == MSP.objects.get(slug=slug).pk


def test_vendor_rejects_duplicate_msp_name(world, vendor_client):
    response = vendor_client.post(MSPS_URL, {"name": world.a.msp.name}, format="json")

    assert response.status_code in (400, 409)
    assert "name" in response.json()["errors"]


def test_vendor_rejects_duplicate_explicit_slug(world, vendor_client):
    response = vendor_client.post(MSPS_URL, {"name": "Fresh Name", "slug": world.a.msp.slug}, format="json")

    assert response.status_code in (400, 409)
    assert MSP.objects.filter(slug=world.a.msp.slug).count() == 1


def test_vendor_rejects_name_with_taken_slug(world):
    client = APIClient(HTTP_HOST="localhost", raise_request_exception=False)
    client.force_login(world.vendor_admin)

    # "msp a" slugifies to "msp-a", MSP A's slug, under a name no MSP has.
    response = client.post(MSPS_URL, {"name": "msp a"}, format="json")

    assert response.status_code in (400, 409)


def test_vendor_rejects_name_without_slug(world, vendor_client):
    response = vendor_client.post(MSPS_URL, {"name": "!!!"}, format="json")

    assert response.status_code == 400


def test_vendor_list_rejects_msp_token(world, client_a):
    response = client_a.get(MSPS_URL)

    assert response.status_code in (401, 403)
    assert response.json()["code"]


def test_vendor_create_rejects_msp_token(world, client_a):
    response = client_a.post(MSPS_URL, {"name": "Rogue MSP"}, format="json")

    assert response.status_code in (401, 403)
    assert not MSP.objects.filter(name="Rogue MSP").exists()


def test_allocate_rejects_msp_token(world, client_a):
    [free] = imported_products()

    response = client_a.post(allocate_url(world.a.msp.slug), {"product_ids": [free]}, format="json")

    assert response.status_code in (401, 403)
    assert Product.objects.get(product_id=free).msp_id is None


def test_allocate_rejects_msp_user(world):
    [free] = imported_products()
    client = basic_client(world.a.msp_user.username, ADMIN_PASSWORD)

    response = client.post(allocate_url(world.a.msp.slug), {"product_ids": [free]}, format="json")

    assert response.status_code == 403
    assert Product.objects.get(product_id=free).msp_id is None


def test_vendor_list_rejects_anonymous(world):
    response = APIClient(HTTP_HOST="localhost").get(MSPS_URL)

    assert response.status_code in (401, 403)
    assert response.json()["code"]


def test_vendor_list_rejects_non_staff(world):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("plain-user", password=ADMIN_PASSWORD)

    response = basic_client("plain-user", ADMIN_PASSWORD).get(MSPS_URL)

    assert response.status_code == 403


def test_allocate_json(world, vendor_client):
    free = imported_products(2)

    response = vendor_client.post(allocate_url(world.a.msp.slug), {"product_ids": free}, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {"changed": 2, "unchanged": 0, "rejected": []}
    for product in Product.objects.filter(product_id__in=free):
        assert product.msp_id == world.a.msp.pk
        assert product.allocated_at is not None
        assert product.claimed_at is None


def test_allocate_csv(world, vendor_client):
    free = imported_products(2)
    body = ("\ufeffproduct_id;batch\r\n" + "".join(f"{pid};7\r\n" for pid in free)).encode()

    response = vendor_client.post(allocate_url(world.a.msp.slug), body, content_type="text/csv")

    assert response.json() == {"changed": 2, "unchanged": 0, "rejected": []}


def test_allocate_rejects_product_of_other_msp(world, vendor_client):
    [taken] = allocated_products(world.b.msp)

    body = vendor_client.post(allocate_url(world.a.msp.slug), {"product_ids": [taken]}, format="json").json()

    assert body["changed"] == 0
    assert body["rejected"] == [
        {"position": 1, "value": taken, "reason": "already allocated to another MSP; take it back first"}
    ]
    assert Product.objects.get(product_id=taken).msp_id == world.b.msp.pk


def test_allocate_rejects_unknown_product(world, vendor_client):
    unknown = new_product_id()

    body = vendor_client.post(allocate_url(world.a.msp.slug), {"product_ids": [unknown]}, format="json").json()

    assert body["rejected"] == [{"position": 1, "value": unknown, "reason": "unknown Product ID; import it first"}]


def test_allocate_csv_reports_line_numbers(world, vendor_client):
    [free] = imported_products()
    [taken] = allocated_products(world.b.msp)
    body = f"{free}\n\nnot-an-id\n{taken}\n".encode()

    result = vendor_client.post(allocate_url(world.a.msp.slug), body, content_type="text/csv").json()

    assert result["changed"] == 1
    assert [(item["position"], item["value"]) for item in result["rejected"]] == [(3, "not-an-id"), (4, taken)]


def test_allocate_again_reports_unchanged(world, vendor_client):
    own = allocated_products(world.a.msp, 2)

    body = vendor_client.post(allocate_url(world.a.msp.slug), {"product_ids": own}, format="json").json()

    assert body == {"changed": 0, "unchanged": 2, "rejected": []}


def test_allocate_unknown_slug_not_found(world, vendor_client):
    [free] = imported_products()

    response = vendor_client.post(allocate_url("no-such-msp"), {"product_ids": [free]}, format="json")

    assert response.status_code == 404
    assert response.json()["code"] == "msp_not_found"
    assert Product.objects.get(product_id=free).msp_id is None


def test_allocate_audited(world, vendor_client):
    [free] = imported_products()

    vendor_client.post(allocate_url(world.a.msp.slug), {"product_ids": [free]}, format="json")

    event = audit_events("product.allocate", free).get()
    assert event.msp_id == world.a.msp.pk
    assert event.actor == world.vendor_admin.username
    assert event.source_address == CLIENT_ADDRESS


def test_allocated_product_claimable_by_msp(world, vendor_client):
    [free] = imported_products()
    vendor_client.post(allocate_url(world.a.msp.slug), {"product_ids": [free]}, format="json")

    body = bearer_client(world.a.msp_token).post("/api/v1/msp/products/claim", {"product_ids": [free]},
                                                 format="json").json()

    assert body["changed"] == 1
