"""NUL characters in URLs and JSON values, which PostgreSQL text and jsonb cannot store.

A NUL in a path parameter or query value gets 400 ``invalid_url`` before any
view runs. A NUL inside device facts gets 400 ``null_characters_not_allowed``
like a NUL in any other string field. Neither writes anything.
"""

from __future__ import annotations

import json

import pytest

from tests.badinput.helpers import assert_error, basic_header, onboard_client, snapshot
from tests.conftest import ADMIN_PASSWORD, client_for
from tests.factories import make_csr, new_product_id

# (host kind, method, path): every route with a free-text path parameter or filter, with a NUL in it.
NUL_URLS = [
    ("tenant", "get", "/api/v1/director/edge-controllers/EC100%00/certificates"),
    ("tenant", "post", "/api/v1/director/edge-controllers/%00/revoke-certificate"),
    ("tenant", "post", "/api/v1/director/edge-controllers/%00/decommission"),
    ("tenant", "get", "/api/v1/director/edge-controllers/%00/config"),
    ("tenant", "put", "/api/v1/director/edge-controllers/%00/manual-config"),
    ("tenant", "get", "/api/v1/director/onboard-requests?status=pending%00"),
    ("tenant", "get", "/api/v1/director/onboard-requests?cursor=%00"),
    ("tenant", "get", "/api/v1/pki/crl/%00"),
    ("tenant", "get", "/api/v1/onboard/7c9e6679-7425-40de-944b-e07fc1f90ae7?wait=1%00"),
    ("tenant", "get", "/.well-known/est/cacerts?%00=1"),
    ("public", "delete", "/api/v1/msp/hosted-tenants/acme%00"),
    ("public", "get", "/api/v1/msp/products?claimed=%00"),
    ("public", "get", "/api/v1/msp/products/EC100:%00/route"),
    ("public", "get", "/api/v1/vendor/products/%00/lookups"),
    ("public", "post", "/api/v1/vendor/msps/%00/allocate"),
    ("public", "get", "/portal/products/?q=%00"),
]


def _client(world, host_kind: str):
    if host_kind == "tenant":
        client = client_for(world.a.domain)
        client.credentials(HTTP_AUTHORIZATION=basic_header(world.a.tenant_admin_username, ADMIN_PASSWORD))
    else:
        client = client_for("localhost")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.a.msp_token}")
    return client


@pytest.mark.parametrize(("host_kind", "method", "path"), NUL_URLS, ids=[f"{m} {p}" for _, m, p in NUL_URLS])
def test_nul_in_url_rejected(world, host_kind, method, path):
    before = snapshot(world)

    client = _client(world, host_kind)
    if method == "get":
        response = client.get(path)
    else:
        response = getattr(client, method)(path, b"{}", content_type="application/json")

    assert_error(response, 400, "invalid_url")
    assert snapshot(world) == before


def test_nul_url_at_unknown_host_returns_404(world):
    response = client_for("unknown.localhost").get("/api/v1/pki/crl/%00")

    assert_error(response, 404, "unknown_host")


@pytest.mark.parametrize("facts", [
    {"serial": "SN\x001"},
    {"mac\x00": "00:11:22:33:44:55"},
    {"nested": {"list": ["ok", {"deep": "x\x00"}]}},
], ids=["value", "key", "nested"])
def test_onboard_nul_in_facts_rejected(world, facts):
    product_id = new_product_id()
    csr, _ = make_csr(product_id)
    before = snapshot(world)

    response = onboard_client(world.a).post("/api/v1/onboard", {"product_id": product_id, "csr": csr,
                                                                 "facts": facts}, format="json")

    body = assert_error(response, 400, "null_characters_not_allowed")
    assert list(body["errors"]) == ["facts"]
    assert snapshot(world) == before


def test_onboard_deeply_nested_facts_accepted(world):
    # Deep enough to exhaust a recursive walk of the facts, yet within the JSON parser's limit.
    product_id = new_product_id()
    csr, _ = make_csr(product_id)
    facts = json.loads('{"a": ' + "[" * 600 + "]" * 600 + "}")
    before = snapshot(world)

    response = onboard_client(world.a).post("/api/v1/onboard", {"product_id": product_id, "csr": csr,
                                                                 "facts": facts}, format="json")

    assert response.status_code == 202, response.content[:300]
    assert snapshot(world) != before


def test_lookup_nul_in_facts_rejected(world):
    from tests.factories import provision_products

    product_id = provision_products(world.a.msp, world.a.registration)[0]
    before = snapshot(world)

    response = client_for("localhost").post("/api/v1/ztp/lookup", {"product_id": product_id,
                                                                    "facts": {"serial": "SN\x001"}},
                                             format="json", HTTP_AUTHORIZATION=f"Bearer {world.provisioning_key}")

    body = assert_error(response, 400, "null_characters_not_allowed")
    assert list(body["errors"]) == ["facts"]
    assert snapshot(world) == before
