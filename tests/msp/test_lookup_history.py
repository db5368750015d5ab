"""Reading the lookup history: ``GET /api/v1/{msp,vendor}/products/<product_id>/lookups`` and the admin."""

from __future__ import annotations

import random
from datetime import timedelta
from urllib.parse import quote

from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from msp.services.products import allocate_products, map_products_to_tenant, numbered
from provisioning.models import LookupEvent, Product
from tests.conftest import ADMIN_PASSWORD
from tests.factories import VENDOR, new_product_id, provision_products
from tests.msp.conftest import basic_client, bearer_client, claimed_products, imported_products

LOOKUP_URL = "/api/v1/ztp/lookup"
EVENT_FIELDS = {"at", "product_id", "access_key_id", "status", "code", "source_address"}


def lookups_url(product_id: str, *, vendor: bool = False) -> str:
    return f"/api/v1/{'vendor' if vendor else 'msp'}/products/{quote(product_id, safe=':')}/lookups"


def lookup(world, product_id: str):
    return bearer_client(world.provisioning_key).post(LOOKUP_URL, {"product_id": product_id}, format="json")


def add_events(product_id: str, count: int, *, oldest_at=None) -> list[LookupEvent]:
    """Insert ``count`` events one minute apart, the oldest at ``oldest_at`` (default now); return them newest first."""
    oldest_at = oldest_at or timezone.now()
    created = [
        LookupEvent.objects.create(product_id=product_id, access_key_id="0123456789ab", status=409,
                                   code="not_mapped", source_address="127.0.0.1",
                                   at=oldest_at + timedelta(minutes=index))
        for index in range(count)
    ]
    return created[::-1]


def all_pages(client, url: str, params: dict) -> tuple[list[dict], int]:
    rows: list[dict] = []
    pages = 0
    response = client.get(url, params)
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        rows.extend(body["results"])
        pages += 1
        if not body["next"]:
            return rows, pages
        response = client.get(body["next"])


def test_msp_lists_own_lookups_newest_first(world, client_a):
    [product_id] = claimed_products(world.a.msp)
    assert lookup(world, product_id).status_code == 409
    map_products_to_tenant(world.a.msp, world.a.registration, numbered([product_id]), actor=VENDOR)
    assert lookup(world, product_id).status_code == 200

    response = client_a.get(lookups_url(product_id))

    assert response.status_code == 200, response.content
    rows = response.json()["results"]
    assert [(row["status"], row["code"]) for row in rows] == [(200, "ok"), (409, "not_mapped")]
    assert set(rows[0]) == EVENT_FIELDS
    assert rows[0]["product_id"] == product_id
    assert rows[0]["source_address"] == "127.0.0.1"


def test_msp_lookups_paginate_with_cursor(world, client_a):
    [product_id] = claimed_products(world.a.msp)
    created = add_events(product_id, 5)

    rows, pages = all_pages(client_a, lookups_url(product_id), {"page_size": 2})

    assert pages == 3
    assert [row["at"] for row in rows] == [event.at.isoformat().replace("+00:00", "Z") for event in created]


def test_msp_lookups_page_has_no_count(world, client_a):
    [product_id] = claimed_products(world.a.msp)
    add_events(product_id, 3)

    body = client_a.get(lookups_url(product_id), {"page_size": 2}).json()

    assert "count" not in body
    assert len(body["results"]) == 2
    assert body["next"]


def test_msp_lookups_hide_before_allocation(world, client_a, vendor_client):
    [product_id] = imported_products()
    add_events(product_id, 1, oldest_at=timezone.now() - timedelta(hours=1))
    allocate_products(world.a.msp, numbered([product_id]), actor=VENDOR)
    add_events(product_id, 1)

    msp_rows = client_a.get(lookups_url(product_id)).json()["results"]
    vendor_rows = vendor_client.get(lookups_url(product_id, vendor=True)).json()["results"]

    assert len(msp_rows) == 1
    assert len(vendor_rows) == 2


def test_msp_lookups_of_product_without_lookups(world, client_a):
    [product_id] = claimed_products(world.a.msp)

    response = client_a.get(lookups_url(product_id))

    assert response.status_code == 200
    assert response.json()["results"] == []


def test_msp_lookups_accept_other_forms(world, client_a):
    [product_id] = claimed_products(world.a.msp)
    add_events(product_id, 1)
    model, unit = product_id.split(":")

    response = client_a.get(lookups_url(f"{model.lower()}:{{{unit.upper()}}}"))

    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == 1


def test_msp_lookups_other_msp_not_found(world, client_a):
    [other] = provision_products(world.b.msp, world.b.registration)
    add_events(other, 2)

    response = client_a.get(lookups_url(other))

    assert response.status_code == 404
    assert response.json()["code"] == "product_not_found"
    assert "results" not in response.json()


def test_msp_lookups_other_msp_matches_unknown(world, client_a):
    [other] = provision_products(world.b.msp, world.b.registration)
    unknown = new_product_id()
    add_events(unknown, 1)

    other_body = client_a.get(lookups_url(other)).json()
    unknown_body = client_a.get(lookups_url(unknown)).json()

    assert other_body["code"] == unknown_body["code"] == "product_not_found"
    assert other_body["detail"].replace(other, "ID") == unknown_body["detail"].replace(unknown, "ID")


def test_msp_lookups_malformed_id_returns_400(world, client_a):
    response = client_a.get(lookups_url("EC100-not-an-id"))

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_product_id"


def test_msp_lookups_reject_anonymous(world):
    [product_id] = claimed_products(world.a.msp)

    response = APIClient(HTTP_HOST="localhost").get(lookups_url(product_id))

    assert response.status_code in (401, 403)


def test_msp_user_lists_lookups(world):
    [product_id] = claimed_products(world.a.msp)
    add_events(product_id, 1)

    response = basic_client(world.a.msp_user.username, ADMIN_PASSWORD).get(lookups_url(product_id))

    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == 1


# --- the vendor's history -------------------------------------------------------------------


def test_vendor_lists_any_msp_lookups(world, vendor_client):
    [other] = provision_products(world.b.msp, world.b.registration)
    lookup(world, other)

    rows = vendor_client.get(lookups_url(other, vendor=True)).json()["results"]

    assert [(row["status"], row["code"]) for row in rows] == [(200, "ok")]


def test_vendor_lists_unknown_id_lookups(world, vendor_client):
    unknown = new_product_id()
    # An address of its own, so unknown IDs that other tests looked up from 127.0.0.1 cannot use up the cap.
    client = APIClient(HTTP_HOST="localhost", REMOTE_ADDR=f"127.9.{random.randint(0, 255)}.{random.randint(1, 254)}")  # noqa: S311
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.provisioning_key}")
    assert client.post(LOOKUP_URL, {"product_id": unknown}, format="json").status_code == 404

    response = vendor_client.get(lookups_url(unknown, vendor=True))

    assert response.status_code == 200, response.content
    assert [row["code"] for row in response.json()["results"]] == ["unknown_product"]


def test_vendor_lookups_never_seen_id_not_found(world, vendor_client):
    response = vendor_client.get(lookups_url(new_product_id(), vendor=True))

    assert response.status_code == 404
    assert response.json()["code"] == "product_not_found"


def test_vendor_lookups_known_product_without_lookups(world, vendor_client):
    [free] = imported_products()

    response = vendor_client.get(lookups_url(free, vendor=True))

    assert response.status_code == 200
    assert response.json()["results"] == []


def test_vendor_lookups_reject_msp_token(world, client_a):
    [product_id] = claimed_products(world.a.msp)
    add_events(product_id, 1)

    response = client_a.get(lookups_url(product_id, vendor=True))

    assert response.status_code in (401, 403)
    assert "results" not in response.json()


def test_vendor_lookups_reject_msp_user(world):
    [product_id] = claimed_products(world.a.msp)

    response = basic_client(world.a.msp_user.username, ADMIN_PASSWORD).get(lookups_url(product_id, vendor=True))

    assert response.status_code == 403


# --- the Django admin -----------------------------------------------------------------------


def admin_client(world) -> Client:
    client = Client(HTTP_HOST="localhost")
    client.force_login(world.vendor_admin)
    return client


def test_admin_lists_lookup_events(world):
    [product_id] = claimed_products(world.a.msp)
    add_events(product_id, 1)

    response = admin_client(world).get("/admin/provisioning/lookupevent/", {"q": product_id})

    assert response.status_code == 200
    assert product_id in response.content.decode()


def test_admin_search_accepts_other_forms(world):
    [product_id] = claimed_products(world.a.msp)
    add_events(product_id, 1)
    model, unit = product_id.split(":")

    response = admin_client(world).get("/admin/provisioning/lookupevent/", {"q": f"{model.lower()}:{{{unit}}}"})

    assert product_id in response.content.decode()


def test_admin_lookup_events_read_only(world):
    [product_id] = claimed_products(world.a.msp)
    [event] = add_events(product_id, 1)
    client = admin_client(world)

    add_page = client.get("/admin/provisioning/lookupevent/add/")
    change = client.post(f"/admin/provisioning/lookupevent/{event.pk}/change/", {"code": "ok", "status": 200})
    delete = client.post(f"/admin/provisioning/lookupevent/{event.pk}/delete/", {"post": "yes"})

    assert add_page.status_code == 403
    assert change.status_code == 403
    assert delete.status_code == 403
    event.refresh_from_db()
    assert event.code == "not_mapped"


def test_product_list_keeps_two_ztp_states(world, client_a):
    # The Provision Server cannot see onboarding at a Director, so a 200 lookup stays "looked_up".
    [product_id] = provision_products(world.a.msp, world.a.registration)
    assert lookup(world, product_id).status_code == 200

    rows = client_a.get("/api/v1/msp/products", {"page_size": 5000}).json()["results"]

    [row] = [row for row in rows if row["product_id"] == product_id]
    assert row["ztp_status"] == "looked_up"
    assert Product.objects.get(product_id=product_id).last_lookup_at is not None
