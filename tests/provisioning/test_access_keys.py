"""Tests for provisioning access keys: creation, storage, rejection reasons and the commands."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import AuditEvent
from common.tokens import hash_secret
from provisioning.models import ProvisioningAccessKey
from provisioning.services.access_keys import (
    AccessKeyRejected,
    authenticate_access_key,
    create_access_key,
    revoke_access_key,
)
from tests.factories import VENDOR, new_product_id, provision_products

KEY_RE = re.compile(r"ztsp_pk_(?P<key_id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]+)")


@pytest.fixture
def mapped_product(world) -> str:
    return provision_products(world.a.msp, world.a.registration)[0]


def assert_rejected(response, code: str) -> None:
    assert response.status_code == 401, response.content
    body = response.json()
    assert body["code"] == code
    assert body["detail"]
    assert response["WWW-Authenticate"] == 'Bearer realm="ztp"'


# --- creation and storage -------------------------------------------------------------------


def test_create_key_has_prefix_and_key_id(world):
    access_key, plaintext = create_access_key("firmware 1.2", actor=VENDOR)

    match = KEY_RE.fullmatch(plaintext)
    assert match is not None, plaintext
    assert match["key_id"] == access_key.key_id
    assert access_key.name == "firmware 1.2"
    assert access_key.expires_at is None
    assert access_key.revoked_at is None


def test_create_key_stores_only_hmac(world):
    access_key, plaintext = create_access_key("firmware", actor=VENDOR)
    secret = KEY_RE.fullmatch(plaintext)["secret"]

    stored = ProvisioningAccessKey.objects.filter(pk=access_key.pk).values().get()

    assert stored["key_hash"] == hash_secret(plaintext)
    for column, value in stored.items():
        assert plaintext not in str(value), column
        assert secret not in str(value), column


def test_create_key_audit_event_has_no_secret(world):
    access_key, plaintext = create_access_key("firmware", actor=VENDOR)
    secret = KEY_RE.fullmatch(plaintext)["secret"]

    event = AuditEvent.objects.get(action="access_key.create", object_id=access_key.key_id)

    assert event.details == {"name": "firmware"}
    for value in (event.actor, event.object_id, str(event.details)):
        assert secret not in value


def test_two_keys_differ(world):
    _first, first_text = create_access_key("one", actor=VENDOR)
    _second, second_text = create_access_key("two", actor=VENDOR)

    assert first_text != second_text


def test_new_key_authorises_lookup(world, lookup, mapped_product):
    _access_key, plaintext = create_access_key("firmware", actor=VENDOR)

    response = lookup(mapped_product, key=plaintext)

    assert response.status_code == 200, response.content


# --- authentication -------------------------------------------------------------------------


def test_authenticate_returns_key_row(world):
    access_key, plaintext = create_access_key("firmware", actor=VENDOR)

    assert authenticate_access_key(plaintext) == access_key


@pytest.mark.parametrize(
    ("presented", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("garbage", "unknown"),
        ("ztsp_pk_", "unknown"),
        ("ztsp_pk_ABCDEF012345_secret", "unknown"),
        ("ztsp_pk_0123456789ab_", "unknown"),
        ("ztsp_pk_0123456789ab_secret", "unknown"),
    ],
)
def test_authenticate_rejects_with_reason(world, presented, reason):
    with pytest.raises(AccessKeyRejected) as raised:
        authenticate_access_key(presented)

    assert raised.value.reason == reason


def test_lookup_without_key_returns_401(lookup, mapped_product):
    response = lookup(mapped_product, key=None)

    assert_rejected(response, "access_key_missing")


def test_lookup_with_basic_auth_returns_401_missing(world, public_client, mapped_product):
    response = public_client.post("/api/v1/ztp/lookup", {"product_id": mapped_product}, format="json",
                                  HTTP_AUTHORIZATION=f"Basic {world.provisioning_key}")

    assert_rejected(response, "access_key_missing")


def test_lookup_with_empty_bearer_returns_401_missing(lookup, mapped_product):
    response = lookup(mapped_product, key="")

    assert_rejected(response, "access_key_missing")


def test_lookup_garbage_key_returns_401_unknown(lookup, mapped_product):
    response = lookup(mapped_product, key="not-a-key")

    assert_rejected(response, "access_key_unknown")


def test_lookup_unknown_key_id_returns_401_unknown(lookup, mapped_product):
    response = lookup(mapped_product, key="ztsp_pk_0123456789ab_" + "A" * 43)

    assert_rejected(response, "access_key_unknown")


def test_lookup_wrong_secret_returns_401_unknown(world, lookup, mapped_product):
    key_id = KEY_RE.fullmatch(world.provisioning_key)["key_id"]

    response = lookup(mapped_product, key=f"ztsp_pk_{key_id}_" + "A" * 43)

    assert_rejected(response, "access_key_unknown")


def test_lookup_other_key_kinds_return_401(world, lookup, mapped_product):
    # Other kinds of key never work as a provisioning access key.
    for key in (world.a.tenant_access_key, world.a.msp_token):
        response = lookup(mapped_product, key=key)

        assert_rejected(response, "access_key_unknown")


def test_lookup_revoked_key_returns_401(world, lookup, mapped_product):
    access_key, plaintext = create_access_key("firmware", actor=VENDOR)
    revoke_access_key(access_key, actor=VENDOR)

    response = lookup(mapped_product, key=plaintext)

    assert_rejected(response, "access_key_revoked")


def test_lookup_expired_key_returns_401(world, lookup, mapped_product):
    _access_key, plaintext = create_access_key("firmware", actor=VENDOR,
                                               expires_at=timezone.now() - timedelta(seconds=1))

    response = lookup(mapped_product, key=plaintext)

    assert_rejected(response, "access_key_expired")


def test_lookup_key_before_expiry_works(world, lookup, mapped_product):
    _access_key, plaintext = create_access_key("firmware", actor=VENDOR,
                                               expires_at=timezone.now() + timedelta(hours=1))

    response = lookup(mapped_product, key=plaintext)

    assert response.status_code == 200, response.content


def test_lookup_revoked_and_expired_key_reports_revoked(world, lookup, mapped_product):
    access_key, plaintext = create_access_key("firmware", actor=VENDOR,
                                              expires_at=timezone.now() - timedelta(days=1))
    revoke_access_key(access_key, actor=VENDOR)

    response = lookup(mapped_product, key=plaintext)

    assert_rejected(response, "access_key_revoked")


def test_revoke_twice_records_one_event(world):
    access_key, _plaintext = create_access_key("firmware", actor=VENDOR)

    first = revoke_access_key(access_key, actor=VENDOR)
    second = revoke_access_key(access_key, actor=VENDOR)

    assert second.revoked_at == first.revoked_at
    assert AuditEvent.objects.filter(action="access_key.revoke", object_id=access_key.key_id).count() == 1


def test_revoked_key_hides_product_existence(world, lookup):
    # A revoked key gets 401 whether or not the product exists.
    access_key, plaintext = create_access_key("firmware", actor=VENDOR)
    revoke_access_key(access_key, actor=VENDOR)

    response = lookup(new_product_id(), key=plaintext)

    assert_rejected(response, "access_key_revoked")


# --- commands -------------------------------------------------------------------------------


def test_revoke_command_revokes_key(world, lookup, mapped_product):
    access_key, plaintext = create_access_key("firmware", actor=VENDOR)
    output = io.StringIO()

    call_command("revoke_access_key", access_key.key_id, stdout=output)

    assert output.getvalue().strip() == f"Revoked access key {access_key.key_id}."
    access_key.refresh_from_db()
    assert access_key.revoked_at is not None
    assert_rejected(lookup(mapped_product, key=plaintext), "access_key_revoked")
    event = AuditEvent.objects.get(action="access_key.revoke", object_id=access_key.key_id)
    assert event.actor.startswith("cli:")


def test_revoke_command_unknown_key_id_raises(world):
    with pytest.raises(CommandError, match="No access key with id '0123456789ab'"):
        call_command("revoke_access_key", "0123456789ab", stdout=io.StringIO())


def test_create_command_prints_working_key(world, lookup, mapped_product):
    output, errors = io.StringIO(), io.StringIO()

    call_command("create_access_key", "firmware 2.0", "--expires-in-days", "30", stdout=output, stderr=errors)

    plaintext = output.getvalue().strip()
    match = KEY_RE.fullmatch(plaintext)
    assert match is not None, plaintext
    assert match["key_id"] in errors.getvalue()
    assert match["secret"] not in errors.getvalue()
    access_key = ProvisioningAccessKey.objects.get(key_id=match["key_id"])
    assert timedelta(days=29) < access_key.expires_at - timezone.now() <= timedelta(days=30)
    assert lookup(mapped_product, key=plaintext).status_code == 200


def test_lookup_with_key_for_other_model_returns_401(world, lookup):
    _key, restricted = create_access_key("EC200 line", actor=VENDOR, allowed_models="ec200")
    product_id = provision_products(world.a.msp, world.a.registration, model="EC100")[0]

    response = lookup(product_id, key=restricted)

    assert response.status_code == 401
    assert response.json()["code"] == "access_key_not_allowed"
    assert "EC100" in response.json()["detail"]


def test_lookup_with_key_for_its_model_succeeds(world, lookup):
    _key, restricted = create_access_key("EC200 line", actor=VENDOR, allowed_models="EC100,EC200")
    product_id = provision_products(world.a.msp, world.a.registration, model="EC200")[0]

    response = lookup(product_id, key=restricted)

    assert response.status_code == 200, response.content


def test_create_access_key_rejects_bad_model_list(world):
    with pytest.raises(ValueError, match="invalid model number"):
        create_access_key("bad", actor=VENDOR, allowed_models="EC 100")
