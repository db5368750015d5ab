"""``GET /api/v1/{msp,vendor}/products/<product_id>/route``: what the ZTP lookup would return now, and why."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from provisioning.models import LookupEvent, Product
from tests.conftest import ADMIN_PASSWORD
from tests.factories import new_product_id, provision_products
from tests.msp.conftest import allocated_products, basic_client, bearer_client, claimed_products, imported_products

LOOKUP_URL = "/api/v1/ztp/lookup"


def route_url(product_id: str, *, vendor: bool = False) -> str:
    return f"/api/v1/{'vendor' if vendor else 'msp'}/products/{quote(product_id, safe=':')}/route"


def lookup(world, product_id: str):
    return bearer_client(world.provisioning_key).post(LOOKUP_URL, {"product_id": product_id}, format="json")


def reason_codes(body: dict) -> list[str]:
    return [reason["code"] for reason in body["reasons"]]


def product_at_stage(world, stage: str) -> str:
    """Return a new product of MSP A at ``stage`` of its life."""
    if stage == "unclaimed":
        return allocated_products(world.a.msp)[0]
    if stage == "unmapped":
        return claimed_products(world.a.msp)[0]
    [product_id] = provision_products(world.a.msp, world.a.registration)
    if stage in ("disabled", "decommissioned"):
        Product.objects.filter(product_id=product_id).update(state=stage)
    return product_id


# (stage, status, code, reason codes)
STAGES = [
    ("unclaimed", 409, "not_claimed", ["state_active", "allocated", "not_claimed", "never_looked_up"]),
    ("unmapped", 409, "not_mapped", ["state_active", "allocated", "claimed", "not_mapped", "never_looked_up"]),
    ("mapped", 200, "ok", ["state_active", "allocated", "claimed", "mapped", "never_looked_up"]),
    ("disabled", 403, "product_disabled", ["state_disabled", "allocated", "claimed", "mapped", "never_looked_up"]),
    ("decommissioned", 403, "product_decommissioned",
     ["state_decommissioned", "allocated", "claimed", "mapped", "never_looked_up"]),
]


@pytest.mark.parametrize(("stage", "status", "code", "reasons"), STAGES)
def test_route_result_for_each_stage(world, client_a, stage, status, code, reasons):
    product_id = product_at_stage(world, stage)

    response = client_a.get(route_url(product_id))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["product_id"] == product_id
    assert body["result"]["status"] == status
    assert body["result"]["code"] == code
    assert body["result"]["detail"]
    assert reason_codes(body) == reasons


@pytest.mark.parametrize(("stage", "status", "code", "reasons"), STAGES)
def test_route_matches_real_lookup(world, client_a, stage, status, code, reasons):
    product_id = product_at_stage(world, stage)

    predicted = client_a.get(route_url(product_id)).json()["result"]
    actual = lookup(world, product_id)

    assert actual.status_code == predicted["status"]
    if actual.status_code != 200:
        assert actual.json()["code"] == predicted["code"]
        assert actual.json()["detail"] == predicted["detail"]


def test_route_retry_after_for_409(world, client_a):
    body = client_a.get(route_url(product_at_stage(world, "unmapped"))).json()

    assert body["result"]["retry_after"] == settings.ZTSP_LOOKUP_RETRY_AFTER


def test_route_no_retry_after_for_200(world, client_a):
    body = client_a.get(route_url(product_at_stage(world, "mapped"))).json()

    assert body["result"]["retry_after"] is None


def test_route_mapped_names_director(world, client_a):
    body = client_a.get(route_url(product_at_stage(world, "mapped"))).json()

    assert body["director_url"] == world.a.registration.management_url
    assert body["tenant_registration"] == {"id": world.a.registration.pk, "name": world.a.registration.name}
    [mapped] = [reason for reason in body["reasons"] if reason["code"] == "mapped"]
    assert world.a.registration.management_url in mapped["detail"]
    assert mapped["at"]


def test_route_disabled_still_names_director(world, client_a):
    body = client_a.get(route_url(product_at_stage(world, "disabled"))).json()

    assert body["result"]["status"] == 403
    assert body["director_url"] == world.a.registration.management_url


def test_route_unmapped_has_no_director(world, client_a):
    body = client_a.get(route_url(product_at_stage(world, "unmapped"))).json()

    assert body["director_url"] is None
    assert body["tenant_registration"] is None


def test_route_reasons_carry_times(world, client_a):
    product_id = product_at_stage(world, "unmapped")
    product = Product.objects.get(product_id=product_id)

    reasons = {reason["code"]: reason for reason in client_a.get(route_url(product_id)).json()["reasons"]}

    assert reasons["allocated"]["at"].replace("Z", "+00:00") == product.allocated_at.isoformat()
    assert reasons["claimed"]["at"].replace("Z", "+00:00") == product.claimed_at.isoformat()
    assert reasons["not_mapped"]["at"] is None
    assert world.a.msp.slug in reasons["allocated"]["detail"]


def test_route_shows_last_lookup(world, client_a):
    product_id = product_at_stage(world, "unmapped")
    lookup(world, product_id)

    reasons = {reason["code"]: reason for reason in client_a.get(route_url(product_id)).json()["reasons"]}

    last = reasons["last_lookup"]
    assert last["at"]
    assert "127.0.0.1" in last["detail"]
    assert "409 not_mapped" in last["detail"]
    assert "never_looked_up" not in reasons


def test_route_follows_state_change(world, client_a):
    product_id = product_at_stage(world, "unmapped")
    assert client_a.get(route_url(product_id)).json()["result"]["code"] == "not_mapped"

    client_a.post("/api/v1/msp/products/map",
                  {"tenant_registration": world.a.registration.pk, "product_ids": [product_id]}, format="json")

    assert client_a.get(route_url(product_id)).json()["result"]["status"] == 200


def test_route_writes_nothing(world, client_a):
    product_id = product_at_stage(world, "mapped")

    client_a.get(route_url(product_id))

    assert Product.objects.get(product_id=product_id).last_lookup_at is None
    assert not LookupEvent.objects.filter(product_id=product_id).exists()


def test_route_accepts_other_forms(world, client_a):
    product_id = product_at_stage(world, "mapped")
    model, unit = product_id.split(":")

    response = client_a.get(route_url(f"{model.lower()}:{{{unit.upper()}}}"))

    assert response.status_code == 200, response.content
    assert response.json()["product_id"] == product_id


def test_route_malformed_id_returns_400(world, client_a):
    response = client_a.get(route_url("EC100-not-an-id"))

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_product_id"


def test_route_unknown_product_not_found(world, client_a):
    product_id = new_product_id()

    response = client_a.get(route_url(product_id))

    assert response.status_code == 404
    assert response.json()["code"] == "product_not_found"


def test_route_other_msp_product_not_found(world, client_a):
    [other] = provision_products(world.b.msp, world.b.registration)

    response = client_a.get(route_url(other))

    assert response.status_code == 404
    assert response.json()["code"] == "product_not_found"
    assert world.b.registration.management_url not in response.content.decode()


def test_route_other_msp_matches_unknown(world, client_a):
    [other] = provision_products(world.b.msp, world.b.registration)
    unknown = new_product_id()

    other_body = client_a.get(route_url(other)).json()
    unknown_body = client_a.get(route_url(unknown)).json()

    assert other_body["code"] == unknown_body["code"]
    assert other_body["detail"].replace(other, "ID") == unknown_body["detail"].replace(unknown, "ID")


def test_route_unallocated_product_not_found(world, client_a):
    [free] = imported_products()

    assert client_a.get(route_url(free)).status_code == 404


def test_route_rejects_anonymous(world):
    product_id = product_at_stage(world, "mapped")

    response = APIClient(HTTP_HOST="localhost").get(route_url(product_id))

    assert response.status_code in (401, 403)


# --- the vendor's route ---------------------------------------------------------------------


def test_vendor_route_shows_any_msp(world, vendor_client):
    [other] = provision_products(world.b.msp, world.b.registration)

    response = vendor_client.get(route_url(other, vendor=True))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["msp"] == {"slug": world.b.msp.slug, "name": world.b.msp.name}
    assert body["result"]["status"] == 200
    assert body["director_url"] == world.b.registration.management_url


def test_vendor_route_unallocated_product(world, vendor_client):
    [free] = imported_products()

    body = vendor_client.get(route_url(free, vendor=True)).json()

    assert body["msp"] is None
    assert body["result"]["code"] == "not_claimed"
    assert reason_codes(body) == ["state_active", "not_allocated", "not_claimed", "never_looked_up"]


def test_vendor_route_unknown_product_not_found(world, vendor_client):
    response = vendor_client.get(route_url(new_product_id(), vendor=True))

    assert response.status_code == 404
    assert response.json()["code"] == "product_not_found"


def test_vendor_route_rejects_msp_token(world, client_a):
    product_id = product_at_stage(world, "mapped")

    response = client_a.get(route_url(product_id, vendor=True))

    assert response.status_code in (401, 403)
    assert "director_url" not in response.json()


def test_vendor_route_rejects_msp_user(world):
    product_id = product_at_stage(world, "mapped")

    response = basic_client(world.a.msp_user.username, ADMIN_PASSWORD).get(route_url(product_id, vendor=True))

    assert response.status_code == 403


def test_msp_route_for_msp_user(world):
    product_id = product_at_stage(world, "mapped")

    response = basic_client(world.a.msp_user.username, ADMIN_PASSWORD).get(route_url(product_id))

    assert response.status_code == 200, response.content



def test_route_says_device_proof_is_required(world, client_a):
    [product_id] = provision_products(world.a.msp, world.a.registration)
    Product.objects.filter(product_id=product_id).update(credential_type="secret_sha256", credential="ab" * 32)

    body = client_a.get(route_url(product_id)).json()

    assert "device_proof_required" in reason_codes(body)
