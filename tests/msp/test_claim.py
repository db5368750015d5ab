"""Claiming products over the MSP API, from a JSON list and from a CSV body."""

from __future__ import annotations

import pytest

from msp.services.products import NOT_YOURS
from provisioning.models import Product
from tests.conftest import ADMIN_PASSWORD
from tests.factories import new_product_id
from tests.msp.conftest import (
    CLIENT_ADDRESS,
    allocated_products,
    audit_events,
    basic_client,
    claimed_products,
    imported_products,
)

CLAIM_URL = "/api/v1/msp/products/claim"


def claim_json(client, product_ids):
    return client.post(CLAIM_URL, {"product_ids": product_ids}, format="json")


def claim_csv(client, body: bytes):
    return client.post(CLAIM_URL, body, content_type="text/csv")


def rejected_by_value(body: dict) -> dict[str, dict]:
    return {item["value"]: item for item in body["rejected"]}


def test_claim_marks_allocated_products_claimed(world, client_a):
    product_ids = allocated_products(world.a.msp, 3)

    response = claim_json(client_a, product_ids)

    assert response.status_code == 200, response.content
    assert response.json() == {"changed": 3, "unchanged": 0, "rejected": []}
    assert Product.objects.filter(product_id__in=product_ids, claimed_at__isnull=False).count() == 3


def test_claim_rejects_product_of_other_msp(world, client_a):
    [other] = allocated_products(world.b.msp)

    body = claim_json(client_a, [other]).json()

    assert body["changed"] == 0
    assert body["rejected"] == [{"position": 1, "value": other, "reason": NOT_YOURS}]
    assert Product.objects.get(product_id=other).claimed_at is None


def test_claim_reports_other_msp_like_unknown(world, client_a):
    # The same reason for both keeps an MSP from probing which Product IDs exist.
    [other] = allocated_products(world.b.msp)
    unknown = new_product_id()

    rejected = rejected_by_value(claim_json(client_a, [other, unknown]).json())

    assert rejected[other]["reason"] == "not allocated to this MSP"
    assert rejected[unknown]["reason"] == "not allocated to this MSP"


def test_claim_rejects_unallocated_product(world, client_a):
    [free] = imported_products()

    body = claim_json(client_a, [free]).json()

    assert body["rejected"] == [{"position": 1, "value": free, "reason": NOT_YOURS}]


def test_claim_keeps_good_items_beside_bad(world, client_a):
    [own] = allocated_products(world.a.msp)
    [other] = allocated_products(world.b.msp)

    body = claim_json(client_a, ["garbage", own, other]).json()

    assert body["changed"] == 1
    assert [item["position"] for item in body["rejected"]] == [1, 3]
    assert Product.objects.get(product_id=own).claimed_at is not None


@pytest.mark.parametrize("value", [
    "no-colon-here",
    "EC100:not-a-uuid",
    "EC100:7c9e6679742540de944be07fc1f90ae7",
    "-EC100:7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "",
    "X" * 200,
])
def test_claim_rejects_malformed_id_with_position(world, client_a, value):
    [own] = allocated_products(world.a.msp)

    body = claim_json(client_a, [own, value]).json()

    assert body["changed"] == 1
    assert len(body["rejected"]) == 1
    assert body["rejected"][0]["position"] == 2
    assert body["rejected"][0]["reason"] != NOT_YOURS


def test_claim_rejects_duplicate_in_request(world, client_a):
    [own] = allocated_products(world.a.msp)
    model, uuid_text = own.split(":")
    # Model numbers compare upper-cased and UUIDs in any case, so this is the same product.
    variant = f"{model.lower()}:{uuid_text.upper()}"

    body = claim_json(client_a, [own, variant]).json()

    assert body["changed"] == 1
    assert body["rejected"] == [{"position": 2, "value": variant, "reason": "duplicate of position 1"}]


def test_claim_again_reports_unchanged(world, client_a):
    product_ids = claimed_products(world.a.msp, 2)
    first_claimed = set(Product.objects.filter(product_id__in=product_ids).values_list("claimed_at", flat=True))

    body = claim_json(client_a, product_ids).json()

    assert body == {"changed": 0, "unchanged": 2, "rejected": []}
    assert set(Product.objects.filter(product_id__in=product_ids).values_list("claimed_at", flat=True)) == (
        first_claimed
    )


def test_claim_rejects_empty_list(world, client_a):
    response = claim_json(client_a, [])

    assert response.status_code == 400
    assert response.json()["code"]


def test_claim_rejects_body_without_product_ids(world, client_a):
    response = client_a.post(CLAIM_URL, {"ids": ["x"]}, format="json")

    assert response.status_code == 400
    assert "product_ids" in response.json()["errors"]


def test_claim_rejects_invalid_json(world, client_a):
    response = client_a.post(CLAIM_URL, b"{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_body"


def test_claim_csv_plain_lines(world, client_a):
    product_ids = allocated_products(world.a.msp, 2)

    body = claim_csv(client_a, "\n".join(product_ids).encode()).json()

    assert body == {"changed": 2, "unchanged": 0, "rejected": []}


def test_claim_csv_bom_crlf_semicolon(world, client_a):
    own = allocated_products(world.a.msp, 2)
    csv_body = (
        "\ufeffserial;product_id\r\n"
        f"S1;{own[0]}\r\n"
        f"S2;{own[1]}\r\n"
    ).encode()

    body = claim_csv(client_a, csv_body).json()

    assert body == {"changed": 2, "unchanged": 0, "rejected": []}
    assert Product.objects.filter(product_id__in=own, claimed_at__isnull=False).count() == 2


def test_claim_csv_reports_line_numbers(world, client_a):
    [own] = allocated_products(world.a.msp)
    [other] = allocated_products(world.b.msp)
    csv_body = (
        "product_id\r\n"      # line 1: header
        f"{own}\r\n"          # line 2
        "\r\n"                # line 3: blank, skipped
        "bad-id\r\n"          # line 4
        f"{other}\r\n"        # line 5
        f"{own.upper()}\r\n"  # line 6: duplicate of line 2
    ).encode()

    body = claim_csv(client_a, csv_body).json()

    assert body["changed"] == 1
    assert [(item["position"], item["value"]) for item in body["rejected"]] == [
        (4, "bad-id"), (5, other), (6, own.upper()),
    ]
    assert body["rejected"][1]["reason"] == NOT_YOURS
    assert body["rejected"][2]["reason"] == "duplicate of position 2"


def test_claim_csv_undecodable_rejected(world, client_a):
    response = claim_csv(client_a, b"product_id\n\xc3\x28\n")

    assert response.status_code == 400
    assert response.json()["code"] == "unreadable_csv"


def test_claim_writes_audit_event_per_product(world, client_a):
    product_ids = allocated_products(world.a.msp, 2)
    key_id = world.a.msp_token.split("_")[2]

    claim_json(client_a, product_ids)

    for product_id in product_ids:
        event = audit_events("product.claim", product_id).get()
        assert event.msp_id == world.a.msp.pk
        assert event.actor_type == "msp_token"
        assert event.actor == f"token:{key_id}"
        assert event.source_address == CLIENT_ADDRESS


def test_claim_audits_only_changed_products(world, client_a):
    [already] = claimed_products(world.a.msp)
    [other] = allocated_products(world.b.msp)
    events_before = audit_events("product.claim", already).count()

    claim_json(client_a, [already, other])

    assert audit_events("product.claim", already).count() == events_before
    assert not audit_events("product.claim", other).exists()


def test_claim_by_user_audited(world):
    [own] = allocated_products(world.a.msp)
    client = basic_client(world.a.msp_user.username, ADMIN_PASSWORD)

    body = claim_json(client, [own]).json()

    assert body["changed"] == 1
    event = audit_events("product.claim", own).get()
    assert event.actor_type == "user"
    assert event.actor == world.a.msp_user.username
    assert event.msp_id == world.a.msp.pk
    assert event.source_address == CLIENT_ADDRESS


def test_claim_audit_ignores_forwarded_for(world, client_a, settings):
    # With no trusted proxy configured, X-Forwarded-For is whatever the client wrote.
    settings.ZTSP_TRUSTED_PROXY_COUNT = 0
    [own] = allocated_products(world.a.msp)

    client_a.post(CLAIM_URL, {"product_ids": [own]}, format="json", HTTP_X_FORWARDED_FOR="203.0.113.9")

    assert audit_events("product.claim", own).get().source_address == CLIENT_ADDRESS
