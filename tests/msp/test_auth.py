"""Authentication of the MSP API: bearer tokens, HTTP Basic for MSP users, and which callers are rejected."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from msp.models import MSP, MSPApiToken
from msp.services.accounts import authenticate_api_token, create_api_token, revoke_api_token
from tests.conftest import ADMIN_PASSWORD
from tests.factories import VENDOR
from tests.msp.conftest import CLIENT_ADDRESS, audit_events, basic_client, bearer_client, row_text

PRODUCTS_URL = "/api/v1/msp/products"
CLAIM_URL = "/api/v1/msp/products/claim"
TOKENS_URL = "/api/v1/msp/tokens"


def assert_error_body(response, status_codes: tuple[int, ...]) -> dict:
    assert response.status_code in status_codes, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("code"), str) and body["code"]
    assert isinstance(body.get("detail"), str) and body["detail"]
    return body


def test_products_without_token_rejected(world):
    response = APIClient(HTTP_HOST="localhost").get(PRODUCTS_URL)

    assert_error_body(response, (401, 403))


def test_missing_token_returns_bearer_challenge(world):
    response = APIClient(HTTP_HOST="localhost").post(CLAIM_URL, {"product_ids": ["x"]}, format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("token", [
    "ztsp_msp_nothex000000_secret",
    "ztsp_msp_0123456789ab",
    "ztsp_msp_0123_secret",
])
def test_malformed_token_rejected(world, token):
    response = bearer_client(token).get(PRODUCTS_URL)

    body = assert_error_body(response, (401,))
    assert body["code"] == "invalid_token"
    assert "malformed" in body["detail"]


def test_token_of_other_kind_rejected(world):
    # A provisioning access key is a bearer token too, but never an MSP token.
    response = bearer_client(world.provisioning_key).get(PRODUCTS_URL)

    assert_error_body(response, (401,))


def test_unknown_token_rejected(world):
    token = f"ztsp_msp_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"

    response = bearer_client(token).get(PRODUCTS_URL)

    body = assert_error_body(response, (401,))
    assert body["code"] == "invalid_token"
    assert "unknown" in body["detail"]


def test_token_with_wrong_secret_rejected(world):
    key_id = world.a.msp_token.split("_")[2]
    forged = f"ztsp_msp_{key_id}_{secrets.token_urlsafe(32)}"

    response = bearer_client(forged).get(PRODUCTS_URL)

    body = assert_error_body(response, (401,))
    assert "unknown" in body["detail"]


def test_revoked_token_rejected(world):
    token, plaintext = create_api_token(world.a.msp, "to revoke", actor=VENDOR)
    assert bearer_client(plaintext).get(PRODUCTS_URL).status_code == 200

    revoke_api_token(token, actor=VENDOR)
    response = bearer_client(plaintext).get(PRODUCTS_URL)

    body = assert_error_body(response, (401,))
    assert "revoked" in body["detail"]
    assert audit_events("msp.token.revoke", token.key_id).exists()


def test_token_use_records_last_used(world):
    token, plaintext = create_api_token(world.a.msp, "usage", actor=VENDOR)

    bearer_client(plaintext).get(PRODUCTS_URL)

    token.refresh_from_db()
    assert token.last_used_at is not None


def test_token_of_inactive_msp_rejected(world):
    MSP.objects.filter(pk=world.a.msp.pk).update(is_active=False)

    response = bearer_client(world.a.msp_token).get(PRODUCTS_URL)

    assert_error_body(response, (401,))


def test_rejection_does_not_echo_token(world):
    token = f"ztsp_msp_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"

    response = bearer_client(token).get(PRODUCTS_URL)

    assert token not in response.content.decode()


def test_token_stored_only_as_hmac(world):
    token, plaintext = create_api_token(world.a.msp, "stored form", actor=VENDOR)
    secret_part = plaintext.rsplit("_", 1)[1]
    expected_hash = hmac.new(settings.ZTSP_HASH_KEY.encode(), plaintext.encode(), hashlib.sha256).hexdigest()

    stored = row_text(MSPApiToken._meta.db_table, token.pk)

    assert token.key_hash == expected_hash
    assert plaintext not in stored
    assert secret_part not in stored


def test_token_absent_from_audit_log(world):
    token, plaintext = create_api_token(world.a.msp, "audit check", actor=VENDOR)
    secret_part = plaintext.rsplit("_", 1)[1]

    event = audit_events("msp.token.create", token.key_id).get()

    assert secret_part not in row_text(event._meta.db_table, event.pk)


def test_msp_user_creates_token_with_basic_auth(world):
    client = basic_client(world.a.msp_user.username, ADMIN_PASSWORD)

    response = client.post(TOKENS_URL, {"name": "automation"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "automation"
    assert body["token"].startswith(f"ztsp_msp_{body['key_id']}_")
    token = authenticate_api_token(body["token"])
    assert token.msp_id == world.a.msp.pk
    assert token.created_by_id == world.a.msp_user.pk
    assert bearer_client(body["token"]).get(PRODUCTS_URL).status_code == 200


def test_token_creation_audited(world):
    client = basic_client(world.a.msp_user.username, ADMIN_PASSWORD)

    key_id = client.post(TOKENS_URL, {"name": "audited"}, format="json").json()["key_id"]

    event = audit_events("msp.token.create", key_id).get()
    assert event.actor == world.a.msp_user.username
    assert event.actor_type == "user"
    assert event.source_address == CLIENT_ADDRESS
    assert event.msp_id == world.a.msp.pk


def test_created_token_not_shown_again(world):
    client = basic_client(world.a.msp_user.username, ADMIN_PASSWORD)
    plaintext = client.post(TOKENS_URL, {"name": "once"}, format="json").json()["token"]

    listing = client.get(TOKENS_URL)
    row = MSPApiToken.objects.get(key_id=plaintext.split("_")[2])

    assert plaintext not in listing.content.decode()
    assert plaintext not in row_text(MSPApiToken._meta.db_table, row.pk)


def test_token_creation_rejects_wrong_password(world):
    client = basic_client(world.a.msp_user.username, "wrong-password")

    response = client.post(TOKENS_URL, {"name": "x"}, format="json")

    assert_error_body(response, (401, 403))
    assert not MSPApiToken.objects.filter(msp=world.a.msp, name="x").exists()


def test_token_cannot_create_token(world, client_a):
    # A leaked API token must not be able to mint further tokens.
    response = client_a.post(TOKENS_URL, {"name": "minted"}, format="json")

    assert_error_body(response, (401, 403))
    assert not MSPApiToken.objects.filter(name="minted").exists()


def test_token_creation_with_list_body_rejected(world):
    client = basic_client(world.a.msp_user.username, ADMIN_PASSWORD)

    response = client.post(TOKENS_URL, ["not", "an", "object"], format="json")

    assert_error_body(response, (400,))


def test_msp_user_basic_auth_lists_products(world):
    response = basic_client(world.a.msp_user.username, ADMIN_PASSWORD).get(PRODUCTS_URL)

    assert response.status_code == 200


def test_msp_user_of_inactive_msp_rejected(world):
    MSP.objects.filter(pk=world.a.msp.pk).update(is_active=False)

    response = basic_client(world.a.msp_user.username, ADMIN_PASSWORD).get(PRODUCTS_URL)

    assert_error_body(response, (403,))


@pytest.mark.parametrize(("method", "url"), [
    ("get", PRODUCTS_URL),
    ("post", CLAIM_URL),
    ("get", "/api/v1/msp/tenant-registrations"),
    ("post", TOKENS_URL),
])
def test_vendor_staff_without_membership_rejected(world, vendor_client, method, url):
    response = getattr(vendor_client, method)(url, {"product_ids": ["x"]} if method == "post" else None,
                                              format="json")

    body = assert_error_body(response, (403,))
    assert body["code"] == "permission_denied"


def test_vendor_staff_basic_auth_rejected(world):
    client = basic_client(world.vendor_admin.username, ADMIN_PASSWORD)

    response = client.get(PRODUCTS_URL)

    assert_error_body(response, (403,))
