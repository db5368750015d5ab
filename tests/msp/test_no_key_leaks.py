"""No MSP or vendor endpoint returns or logs a tenant access key, except the rotate response with its new key."""

from __future__ import annotations

import logging
from urllib.parse import quote

from audit.models import AuditEvent
from tests.factories import provision_products
from tests.msp.conftest import bearer_client
from tests.msp.test_registrations import new_access_key, register, unique_host

REGISTRATIONS_URL = "/api/v1/msp/tenant-registrations"


def logged_text(records) -> str:
    """Return everything the records could put in a log line: message, arguments and traceback."""
    parts = []
    for record in records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


def secret_forms(key: str) -> list[str]:
    """Return the whole key and its secret part; the prefix has one underscore (``ztsp_tk_<id>_<secret>``)."""
    return [key, key.split("_", 3)[3]]


def test_endpoints_leak_no_tenant_key(world, client_a, vendor_client, caplog):
    caplog.set_level(logging.DEBUG)
    external_key = new_access_key()
    patched_key = new_access_key()
    [product_id] = provision_products(world.a.msp, world.a.registration)
    path_id = quote(product_id, safe=":")
    lookup_response = bearer_client(world.provisioning_key).post("/api/v1/ztp/lookup", {"product_id": product_id},
                                                                 format="json")
    assert lookup_response.json()["access_key"] == world.a.tenant_access_key

    external_id = register(client_a, f"https://{unique_host()}", access_key=external_key).json()["id"]
    responses = {
        "products": client_a.get("/api/v1/msp/products"),
        "route": client_a.get(f"/api/v1/msp/products/{path_id}/route"),
        "lookups": client_a.get(f"/api/v1/msp/products/{path_id}/lookups"),
        "vendor route": vendor_client.get(f"/api/v1/vendor/products/{path_id}/route"),
        "vendor lookups": vendor_client.get(f"/api/v1/vendor/products/{path_id}/lookups"),
        "registrations": client_a.get(REGISTRATIONS_URL),
        "registration": client_a.get(f"{REGISTRATIONS_URL}/{world.a.registration.pk}"),
        "patch": client_a.patch(f"{REGISTRATIONS_URL}/{external_id}", {"access_key": patched_key}, format="json"),
        "rotate elsewhere": client_a.post(f"{REGISTRATIONS_URL}/{external_id}/rotate", {}, format="json"),
        "delete in use": client_a.delete(f"{REGISTRATIONS_URL}/{world.a.registration.pk}"),
        "delete": client_a.delete(f"{REGISTRATIONS_URL}/{external_id}"),
    }
    rotate_response = client_a.post(f"{REGISTRATIONS_URL}/{world.a.registration.pk}/rotate", {}, format="json")
    rotated_key = rotate_response.json()["access_key"]
    responses["route after rotate"] = client_a.get(f"/api/v1/msp/products/{path_id}/route")

    assert {name: response.status_code for name, response in responses.items()} == {
        "products": 200, "route": 200, "lookups": 200, "vendor route": 200, "vendor lookups": 200,
        "registrations": 200, "registration": 200, "patch": 200, "rotate elsewhere": 409, "delete in use": 409,
        "delete": 204, "route after rotate": 200,
    }
    assert rotate_response.status_code == 200
    secrets = [
        *secret_forms(world.a.tenant_access_key), *secret_forms(world.b.tenant_access_key),
        *secret_forms(external_key), *secret_forms(patched_key), *secret_forms(rotated_key),
    ]
    for name, response in responses.items():
        text = response.content.decode()
        for secret in secrets:
            assert secret not in text, f"the {name} response contains a tenant access key"
    for secret in secret_forms(world.a.tenant_access_key):
        assert secret not in rotate_response.content.decode()

    assert caplog.records, "nothing was logged, so the check below proves nothing"
    logs = logged_text(caplog.records)
    for secret in secrets:
        assert secret not in logs
    audit_text = "\n".join(str(event.details) for event in AuditEvent.objects.filter(at__gte=world.a.msp.created_at))
    for secret in secrets:
        assert secret not in audit_text
