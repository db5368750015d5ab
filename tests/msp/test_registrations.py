"""Tenant registrations: URL normalisation and checks, the encrypted access key, and per-MSP scoping."""

from __future__ import annotations

import secrets
import uuid

import pytest

from common import tokens
from msp.models import TenantRegistration
from tests.msp.conftest import CLIENT_ADDRESS, audit_events, bearer_client, claimed_products, row_text

REGISTRATIONS_URL = "/api/v1/msp/tenant-registrations"


def detail_url(registration_id: int) -> str:
    return f"{REGISTRATIONS_URL}/{registration_id}"


def new_access_key() -> str:
    return f"ztsp_tk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


def unique_host() -> str:
    return f"t-{uuid.uuid4().hex[:12]}.director.example"


def register(client, management_url: str, *, name: str | None = None, access_key: str | None = None):
    body = {
        "name": name or f"Tenant {uuid.uuid4().hex[:8]}",
        "management_url": management_url,
        "access_key": access_key or new_access_key(),
    }
    return client.post(REGISTRATIONS_URL, body, format="json")


def test_register_creates_registration(world, client_a):
    host = unique_host()

    response = register(client_a, f"https://{host}", name="Branch offices")

    assert response.status_code == 201, response.content
    body = response.json()
    registration = TenantRegistration.objects.get(pk=body["id"])
    assert registration.msp_id == world.a.msp.pk
    assert registration.name == "Branch offices"
    assert body["management_url"] == f"https://{host}"


@pytest.mark.parametrize(("given", "expected"), [
    ("https://{HOST}", "https://{host}"),
    ("https://{host}:443", "https://{host}"),
    ("http://{host}:80/", "http://{host}"),
    ("https://{host}/", "https://{host}"),
    ("https://{host}:8443/", "https://{host}:8443"),
    ("  https://{host}  ", "https://{host}"),
])
def test_register_normalises_url(world, client_a, given, expected):
    host = unique_host()
    url = given.format(host=host, HOST=host.upper())

    response = register(client_a, url)

    assert response.status_code == 201, response.content
    assert response.json()["management_url"] == expected.format(host=host)
    assert TenantRegistration.objects.get(pk=response.json()["id"]).management_url == expected.format(host=host)


@pytest.mark.parametrize("url", [
    "https://{host}/tenant",
    "https://{host}/?tenant=1",
    "https://{host}/#top",
    "https://user:secret@{host}",
    "https://user@{host}",
    "ftp://{host}",
])
def test_register_rejects_url_beyond_host(world, client_a, url):
    response = register(client_a, url.format(host=unique_host()))

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_management_url"
    assert "management_url" in body["errors"]


@pytest.mark.parametrize("url", ["not a url", "acme.director.example", "https://", "javascript:alert(1)"])
def test_register_rejects_garbage_url(world, client_a, url):
    response = register(client_a, url)

    assert response.status_code == 400
    assert "management_url" in response.json()["errors"]


def test_register_garbage_url_code(world, client_a):
    response = register(client_a, "not a url")

    assert response.json()["code"] == "invalid_management_url"


def test_register_rejects_short_access_key(world, client_a):
    host = unique_host()

    response = register(client_a, f"https://{host}", access_key="too-short")

    assert response.status_code == 400
    assert "access_key" in response.json()["errors"]
    assert not TenantRegistration.objects.filter(management_url=f"https://{host}").exists()


def test_register_rejects_blank_padded_key(world, client_a):
    # The serializer trims surrounding spaces, so padding a short key to 20 characters does not help.
    host = unique_host()

    response = register(client_a, f"https://{host}", access_key="abc" + " " * 20)

    assert response.status_code == 400
    assert not TenantRegistration.objects.filter(management_url=f"https://{host}").exists()


def test_register_duplicate_url_conflicts(world, client_a):
    host = unique_host()
    register(client_a, f"https://{host}")

    response = register(client_a, f"HTTPS://{host.upper()}:443/")

    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_registration"
    assert TenantRegistration.objects.filter(management_url=f"https://{host}").count() == 1


def test_register_other_msp_url_conflicts(world, client_b):
    # One Director tenant has one URL, so MSP B cannot take over MSP A's tenant.
    response = register(client_b, world.a.registration.management_url)

    assert response.status_code == 409
    assert TenantRegistration.objects.get(management_url=world.a.registration.management_url).msp_id == (
        world.a.msp.pk
    )


def test_register_duplicate_name_conflicts(world, client_a):
    response = register(client_a, f"https://{unique_host()}", name=world.a.registration.name)

    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_registration"


def test_register_same_name_for_other_msp_allowed(world, client_b):
    response = register(client_b, f"https://{unique_host()}", name=world.a.registration.name)

    assert response.status_code == 201, response.content


def test_register_stores_key_encrypted(world, client_a):
    key = new_access_key()

    registration_id = register(client_a, f"https://{unique_host()}", access_key=key).json()["id"]

    stored = row_text(TenantRegistration._meta.db_table, registration_id)
    registration = TenantRegistration.objects.get(pk=registration_id)
    assert key not in stored
    assert key.split("_", 3)[3] not in stored
    assert tokens.decrypt(registration.access_key_encrypted).decode() == key


def test_register_response_omits_key(world, client_a):
    key = new_access_key()

    response = register(client_a, f"https://{unique_host()}", access_key=key)

    assert "access_key" not in response.json()
    assert key not in response.content.decode()


def test_registration_gets_omit_key(world, client_a):
    key = new_access_key()
    registration_id = register(client_a, f"https://{unique_host()}", access_key=key).json()["id"]

    listing = client_a.get(REGISTRATIONS_URL)
    detail = client_a.get(detail_url(registration_id))

    assert listing.status_code == 200
    assert detail.status_code == 200
    for response in (listing, detail):
        assert key not in response.content.decode()
        assert "access_key" not in response.content.decode()


def test_register_writes_audit_event(world, client_a):
    key = new_access_key()
    host = unique_host()

    registration_id = register(client_a, f"https://{host}", access_key=key).json()["id"]

    event = audit_events("tenant_registration.create", str(registration_id)).get()
    assert event.msp_id == world.a.msp.pk
    assert event.actor_type == "msp_token"
    assert event.source_address == CLIENT_ADDRESS
    assert event.details == {"management_url": f"https://{host}"}
    assert key not in row_text(event._meta.db_table, event.pk)


def test_patch_replaces_access_key(world, client_a):
    old_key = new_access_key()
    new_key = new_access_key()
    registration_id = register(client_a, f"https://{unique_host()}", access_key=old_key).json()["id"]

    response = client_a.patch(detail_url(registration_id), {"access_key": new_key}, format="json")

    assert response.status_code == 200, response.content
    assert new_key not in response.content.decode()
    registration = TenantRegistration.objects.get(pk=registration_id)
    assert tokens.decrypt(registration.access_key_encrypted).decode() == new_key
    assert new_key not in row_text(TenantRegistration._meta.db_table, registration_id)


def test_patch_key_reaches_lookup(world, client_a):
    new_key = new_access_key()
    [own] = claimed_products(world.a.msp)
    client_a.post("/api/v1/msp/products/map",
                  {"tenant_registration": world.a.registration.pk, "product_ids": [own]}, format="json")

    client_a.patch(detail_url(world.a.registration.pk), {"access_key": new_key}, format="json")
    response = bearer_client(world.provisioning_key).post("/api/v1/ztp/lookup", {"product_id": own}, format="json")

    assert response.json()["access_key"] == new_key


def test_patch_rejects_short_key(world, client_a):
    before = TenantRegistration.objects.get(pk=world.a.registration.pk).access_key_encrypted

    response = client_a.patch(detail_url(world.a.registration.pk), {"access_key": "short"}, format="json")

    assert response.status_code == 400
    assert TenantRegistration.objects.get(pk=world.a.registration.pk).access_key_encrypted == before


def test_patch_writes_audit_event(world, client_a):
    client_a.patch(detail_url(world.a.registration.pk), {"access_key": new_access_key()}, format="json")

    event = audit_events("tenant_registration.update", str(world.a.registration.pk)).get()
    assert event.details == {"access_key": "replaced"}
    assert event.msp_id == world.a.msp.pk
    assert event.source_address == CLIENT_ADDRESS


def test_other_msp_get_not_found(world, client_b):
    response = client_b.get(detail_url(world.a.registration.pk))

    assert response.status_code == 404
    assert response.json()["code"] == "tenant_registration_not_found"


def test_other_msp_patch_not_found(world, client_b):
    before = TenantRegistration.objects.get(pk=world.a.registration.pk).access_key_encrypted

    response = client_b.patch(detail_url(world.a.registration.pk), {"access_key": new_access_key()},
                              format="json")

    assert response.status_code == 404
    assert response.json()["code"] == "tenant_registration_not_found"
    assert TenantRegistration.objects.get(pk=world.a.registration.pk).access_key_encrypted == before
    assert not audit_events("tenant_registration.update_key", str(world.a.registration.pk)).exists()


def test_other_msp_list_excludes_registration(world, client_a, client_b):
    own_id = register(client_a, f"https://{unique_host()}").json()["id"]

    ids = {row["id"] for row in client_b.get(REGISTRATIONS_URL).json()}

    assert world.b.registration.pk in ids
    assert world.a.registration.pk not in ids
    assert own_id not in ids


def test_patch_renames_registration(world, client_a):
    response = client_a.patch(detail_url(world.a.registration.pk), {"name": "Acme East"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Acme East"


def test_patch_moves_management_url(world, client_a):
    response = client_a.patch(detail_url(world.a.registration.pk), {"management_url": "https://ACME.example.com/"},
                              format="json")

    assert response.status_code == 200, response.content
    assert response.json()["management_url"] == "https://acme.example.com"


def test_patch_rejects_bad_url(world, client_a):
    response = client_a.patch(detail_url(world.a.registration.pk), {"management_url": "javascript:alert(1)"},
                              format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_management_url"


def test_patch_rejects_unknown_field(world, client_a):
    response = client_a.patch(detail_url(world.a.registration.pk), {"msp": world.b.msp.pk}, format="json")

    assert response.status_code == 400
    assert "msp" in response.json()["errors"]


def test_patch_other_msp_url_hidden(world, client_a):
    response = client_a.patch(detail_url(world.a.registration.pk),
                              {"management_url": world.b.registration.management_url}, format="json")

    assert response.status_code == 409
    assert world.b.registration.name not in response.json()["detail"]
    assert "cannot be registered" in response.json()["detail"]
