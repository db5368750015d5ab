"""Listing the caller's products: scoping, cursor pagination, the claimed filter and ZTP status."""

from __future__ import annotations

from msp.services.accounts import create_api_token, create_msp
from tests.factories import VENDOR
from tests.msp.conftest import allocated_products, bearer_client, claimed_products

PRODUCTS_URL = "/api/v1/msp/products"


def all_pages(client, params: dict) -> tuple[list[dict], int]:
    """Follow the cursor links from the first page; return every row and the number of pages."""
    rows: list[dict] = []
    pages = 0
    response = client.get(PRODUCTS_URL, params)
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        rows.extend(body["results"])
        pages += 1
        if not body["next"]:
            return rows, pages
        response = client.get(body["next"])


def listed_ids(client, params: dict | None = None) -> list[str]:
    rows, _pages = all_pages(client, {"page_size": 5000, **(params or {})})
    return [row["product_id"] for row in rows]


def test_list_contains_only_own_products(world, client_a):
    own = allocated_products(world.a.msp, 2)
    other = allocated_products(world.b.msp, 2)

    ids = listed_ids(client_a)

    assert set(own) <= set(ids)
    assert not set(other) & set(ids)


def test_list_row_fields(world, client_a):
    [own] = claimed_products(world.a.msp)

    [row] = [row for row in all_pages(client_a, {"page_size": 5000})[0] if row["product_id"] == own]

    assert row["model_number"] == "EC100"
    assert row["state"] == "active"
    assert row["allocated_at"]
    assert row["claimed_at"]
    assert row["tenant_registration"] is None
    assert row["mapped_at"] is None
    assert row["ztp_status"] == "never_seen"


def test_list_paginates_with_cursor(world, client_a):
    own = allocated_products(world.a.msp, 5)

    rows, pages = all_pages(client_a, {"page_size": 2})
    ids = [row["product_id"] for row in rows]

    assert pages >= 3
    assert len(ids) == len(set(ids))
    assert set(own) <= set(ids)


def test_list_page_has_no_count(world, client_a):
    # Cursor pages skip COUNT(*), which is slow over millions of products.
    allocated_products(world.a.msp, 3)

    body = client_a.get(PRODUCTS_URL, {"page_size": 2}).json()

    assert "count" not in body
    assert len(body["results"]) == 2
    assert body["next"].startswith("http://localhost/api/v1/msp/products?")
    assert body["previous"] is None


def test_list_cursor_stays_with_caller(world, client_a, client_b):
    # A cursor taken from one MSP's page must not reveal the other MSP's products.
    allocated_products(world.a.msp, 3)
    other = allocated_products(world.b.msp, 2)
    next_url = client_a.get(PRODUCTS_URL, {"page_size": 1}).json()["next"]

    rows = client_b.get(next_url).json()["results"]

    assert {row["product_id"] for row in rows} <= set(listed_ids(client_b))
    assert set(other) <= set(listed_ids(client_b))


def test_list_filters_claimed_true(world, client_a):
    claimed = claimed_products(world.a.msp, 2)
    unclaimed = allocated_products(world.a.msp, 2)

    ids = set(listed_ids(client_a, {"claimed": "true"}))

    assert set(claimed) <= ids
    assert not set(unclaimed) & ids


def test_list_filters_claimed_false(world, client_a):
    claimed = claimed_products(world.a.msp, 2)
    unclaimed = allocated_products(world.a.msp, 2)

    ids = set(listed_ids(client_a, {"claimed": "false"}))

    assert set(unclaimed) <= ids
    assert not set(claimed) & ids


def test_list_shows_ztp_status_after_lookup(world, client_a):
    [own] = claimed_products(world.a.msp)
    lookup_client = bearer_client(world.provisioning_key)
    # An unmapped product is rejected with 409, but the lookup is still recorded.
    assert lookup_client.post("/api/v1/ztp/lookup", {"product_id": own}, format="json").status_code == 409

    [row] = [row for row in all_pages(client_a, {"page_size": 5000})[0] if row["product_id"] == own]

    assert row["ztp_status"] == "looked_up"
    assert row["last_lookup_at"]


def test_list_without_products_is_empty_page(world):
    msp = create_msp("Empty MSP", slug="empty-msp", actor=VENDOR)
    _token, plaintext = create_api_token(msp, "tests", actor=VENDOR)

    body = bearer_client(plaintext).get(PRODUCTS_URL).json()

    assert body["results"] == []
    assert body["next"] is None
