"""``POST /api/v1/onboard``: an EC submits its Product ID, CSR and facts to its tenant."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from tests.conftest import client_for
from tests.factories import make_csr, make_key, new_product_id
from tests.onboarding.helpers import (
    approve_and_issue,
    onboard,
    post_onboard,
    row_counts,
    tamper_signature,
)


def _valid_body(product_id: str | None = None) -> dict:
    product_id = product_id or new_product_id()
    csr, _ = make_csr(product_id)
    return {"product_id": product_id, "csr": csr, "facts": {"firmware": "1.2.0"}}


def _request_row(schema: str, request_id: str):
    from onboarding.models import OnboardRequest

    with schema_context(schema):
        return OnboardRequest.objects.select_related("edge_controller").get(pk=request_id)


def test_onboard_returns_pending_request(world):
    submitted = onboard(world.a)

    assert submitted.body["status"] == "pending"
    assert submitted.request_id
    assert submitted.poll_token.startswith("ztsp_poll")


def test_onboard_stores_request_in_tenant_schema(world):
    globex_counts = row_counts("globex")

    submitted = onboard(world.a, facts={"firmware": "1.2.0", "serial": "SN-1"})

    row = _request_row("acme", submitted.request_id)
    assert row.product_id == submitted.product_id
    assert row.status == "pending"
    assert row.conflict is False
    assert row.facts == {"firmware": "1.2.0", "serial": "SN-1"}
    assert row.csr_pem == submitted.csr
    assert row_counts("globex") == globex_counts


def test_onboard_same_csr_is_idempotent(world):
    first = onboard(world.a)
    counts = row_counts("acme")

    response = post_onboard(world.a.domain, world.a.tenant_access_key,
                            {"product_id": first.product_id, "csr": first.csr, "facts": {}})

    assert response.status_code == 202
    assert response.json()["request_id"] == first.request_id
    assert response.json()["poll_token"] == first.poll_token
    assert response.json()["status"] == "pending"
    assert row_counts("acme") == counts


def test_onboard_repeat_after_issue_returns_issued(world):
    first = onboard(world.a)
    approve_and_issue("acme", first.request_id)

    response = post_onboard(world.a.domain, world.a.tenant_access_key,
                            {"product_id": first.product_id, "csr": first.csr, "facts": {}})

    assert response.status_code == 202
    assert response.json()["request_id"] == first.request_id
    assert response.json()["status"] == "issued"


def test_onboard_new_csr_for_pending_ec_flags_conflict(world):
    first = onboard(world.a)

    second = onboard(world.a, first.product_id)

    assert second.request_id != first.request_id
    assert second.poll_token != first.poll_token
    assert second.body["status"] == "pending"
    assert _request_row("acme", second.request_id).conflict is True
    untouched = _request_row("acme", first.request_id)
    assert untouched.status == "pending"
    assert untouched.conflict is False
    assert untouched.csr_pem == first.csr


def test_onboard_new_csr_for_onboarded_ec_flags_conflict(world):
    first = onboard(world.a)
    approve_and_issue("acme", first.request_id)

    second = onboard(world.a, first.product_id)

    assert _request_row("acme", second.request_id).conflict is True
    assert _request_row("acme", first.request_id).status == "issued"
    assert _request_row("acme", first.request_id).edge_controller.state == "onboarded"


def test_onboard_accepts_rsa2048_key(world):
    submitted = onboard(world.a, key=make_key("rsa2048"))

    assert submitted.body["status"] == "pending"


def test_onboard_canonicalises_product_id(world):
    product_id = new_product_id()
    csr, _ = make_csr(product_id)
    lower_case = product_id.lower()

    response = post_onboard(world.a.domain, world.a.tenant_access_key,
                            {"product_id": f"  {lower_case} ", "csr": csr, "facts": {}})

    assert response.status_code == 202, response.content
    assert _request_row("acme", response.json()["request_id"]).product_id == product_id


def test_onboard_records_edge_controller(world):
    before = timezone.now()

    submitted = onboard(world.a, facts={"firmware": "2.0.1", "model": "EC100"})

    controller = _request_row("acme", submitted.request_id).edge_controller
    assert controller.product_id == submitted.product_id
    assert controller.state == "pending"
    assert controller.facts == {"firmware": "2.0.1", "model": "EC100"}
    # The test client sends every request from REMOTE_ADDR 127.0.0.1.
    assert controller.last_source_address == "127.0.0.1"
    assert before - timedelta(seconds=5) <= controller.first_seen_at <= timezone.now()


def test_onboard_ignores_untrusted_forwarded_for(world):
    # With no trusted proxy configured, X-Forwarded-For is whatever the client wrote.
    response = post_onboard(world.a.domain, world.a.tenant_access_key, _valid_body(),
                            HTTP_X_FORWARDED_FOR="203.0.113.9")

    assert response.status_code == 202
    row = _request_row("acme", response.json()["request_id"])
    assert row.source_address == "127.0.0.1"
    assert row.edge_controller.last_source_address == "127.0.0.1"


def test_onboard_keeps_first_seen_on_second_request(world):
    first = onboard(world.a)
    first_seen = _request_row("acme", first.request_id).edge_controller.first_seen_at

    second = onboard(world.a, first.product_id)

    assert _request_row("acme", second.request_id).edge_controller.first_seen_at == first_seen


# Invalid bodies. Each case returns its error code and writes no row.


def _tampered_body() -> dict:
    body = _valid_body()
    body["csr"] = tamper_signature(body["csr"])
    return body


def _other_subject_body() -> dict:
    body = _valid_body()
    body["csr"], _ = make_csr(new_product_id())
    return body


def _weak_key_body() -> dict:
    product_id = new_product_id()
    csr, _ = make_csr(product_id, make_key("rsa1024"))
    return {"product_id": product_id, "csr": csr, "facts": {}}


def _garbage_csr_body() -> dict:
    body = _valid_body()
    body["csr"] = "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgQ1NS\n-----END CERTIFICATE REQUEST-----\n"
    return body


def _not_pem_body() -> dict:
    body = _valid_body()
    body["csr"] = "hello"
    return body


def _bad_product_id_body() -> dict:
    csr, _ = make_csr("EC100-no-separator")
    return {"product_id": "EC100-no-separator", "csr": csr, "facts": {}}


def _bad_uuid_body() -> dict:
    csr, _ = make_csr("EC100:not-a-uuid")
    return {"product_id": "EC100:not-a-uuid", "csr": csr, "facts": {}}


@pytest.mark.parametrize(
    ("make_body", "code"),
    [
        (_tampered_body, "csr_bad_signature"),
        (_other_subject_body, "csr_subject_mismatch"),
        (_weak_key_body, "csr_weak_key"),
        (_garbage_csr_body, "csr_malformed"),
        (_not_pem_body, "csr_malformed"),
        (_bad_product_id_body, "invalid_product_id"),
        (_bad_uuid_body, "invalid_product_id"),
    ],
    ids=["tampered", "other-subject", "rsa1024", "garbage-der", "not-pem", "no-separator", "bad-uuid"],
)
def test_onboard_invalid_body_returns_400(world, make_body, code):
    body = make_body()
    counts = row_counts("acme")

    response = post_onboard(world.a.domain, world.a.tenant_access_key, body)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert response.json()["detail"]
    assert row_counts("acme") == counts


@pytest.mark.parametrize("missing", ["product_id", "csr"])
def test_onboard_missing_field_returns_400(world, missing):
    body = _valid_body()
    del body[missing]
    counts = row_counts("acme")

    response = post_onboard(world.a.domain, world.a.tenant_access_key, body)

    assert response.status_code == 400
    assert missing in response.json()["errors"]
    assert row_counts("acme") == counts


def test_onboard_tampered_csr_leaves_pending_ec_alone(world):
    # A forged CSR for a known EC must not create a conflict or touch the EC.
    first = onboard(world.a, facts={"firmware": "1.0"})
    csr, _ = make_csr(first.product_id)
    counts = row_counts("acme")

    response = post_onboard(world.a.domain, world.a.tenant_access_key,
                            {"product_id": first.product_id, "csr": tamper_signature(csr),
                             "facts": {"firmware": "evil"}})

    assert response.status_code == 400
    assert response.json()["code"] == "csr_bad_signature"
    assert row_counts("acme") == counts
    assert _request_row("acme", first.request_id).edge_controller.facts == {"firmware": "1.0"}


@pytest.mark.parametrize(
    "access_key",
    [None, "garbage", "ztsp_tk_notakey_0000"],
    ids=["missing", "garbage", "wrong-prefix-shape"],
)
def test_onboard_without_valid_key_returns_401(world, access_key):
    counts = row_counts("acme")

    response = post_onboard(world.a.domain, access_key, _valid_body())

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_access_key"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert row_counts("acme") == counts


def test_onboard_other_tenant_key_returns_401(world):
    counts = {"acme": row_counts("acme"), "globex": row_counts("globex")}

    at_acme = post_onboard(world.a.domain, world.b.tenant_access_key, _valid_body())
    at_globex = post_onboard(world.b.domain, world.a.tenant_access_key, _valid_body())

    assert at_acme.status_code == 401
    assert at_globex.status_code == 401
    assert at_acme.json()["code"] == "invalid_access_key"
    assert at_globex.json()["code"] == "invalid_access_key"
    assert row_counts("acme") == counts["acme"]
    assert row_counts("globex") == counts["globex"]


def test_onboard_key_with_other_scheme_returns_401(world):
    response = client_for(world.a.domain).post("/api/v1/onboard", _valid_body(), format="json",
                                               HTTP_AUTHORIZATION=f"Token {world.a.tenant_access_key}")

    assert response.status_code == 401


def test_onboard_body_over_64kib_returns_413(world):
    body = _valid_body()
    body["facts"] = {"padding": "x" * (64 * 1024)}
    counts = row_counts("acme")

    response = post_onboard(world.a.domain, world.a.tenant_access_key, body)

    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
    assert row_counts("acme") == counts


def test_onboard_too_many_facts_returns_400(world):
    body = _valid_body()
    body["facts"] = {f"fact{index}": "value" for index in range(51)}
    counts = row_counts("acme")

    response = post_onboard(world.a.domain, world.a.tenant_access_key, body)

    assert response.status_code == 400
    assert "facts" in response.json()["errors"]
    assert row_counts("acme") == counts


def test_onboard_malformed_json_returns_400(world):
    response = client_for(world.a.domain).generic(
        "POST", "/api/v1/onboard", b"{not json", content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {world.a.tenant_access_key}",
    )

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_body"


@pytest.mark.parametrize("host", ["nobody.localhost", "evil.example"])
def test_onboard_unknown_host_returns_404(world, host):
    response = post_onboard(host, world.a.tenant_access_key, _valid_body())

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "unknown_host"


def test_onboard_at_provision_host_returns_404(world):
    counts = row_counts("acme")

    response = post_onboard("localhost", world.a.tenant_access_key, _valid_body())

    assert response.status_code == 404
    assert row_counts("acme") == counts


def test_onboard_long_product_id_cn(world):
    """A Product ID over the 64-character commonName limit is named by its UUID in the CSR subject."""
    import uuid

    from pki import crypto
    from tests.factories import make_csr

    product_id = f"EC-EXTENDED-RANGE-OUTDOOR-MODEL9:{uuid.uuid4()}"
    csr_pem, _key = make_csr(crypto.common_name_for(product_id))

    response = client_for(world.a.domain).post(
        "/api/v1/onboard", {"product_id": product_id, "csr": csr_pem, "facts": {}}, format="json",
        HTTP_AUTHORIZATION=f"Bearer {world.a.tenant_access_key}",
    )

    assert response.status_code == 202, response.content
