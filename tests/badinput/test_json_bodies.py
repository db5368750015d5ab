"""Malformed, mistyped, empty, oversized and over-long JSON bodies at every JSON endpoint.

Each case checks the exact status and ``code`` and that no row and no schema
was written. Bodies of a wrong content type, such as a form, are rejected with
415 before they are read, and bodies over ``DATA_UPLOAD_MAX_MEMORY_SIZE``
(``ZTSP_MAX_BODY_BYTES``) with 413.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from django.conf import settings

from tests.badinput.helpers import assert_error, basic_header, snapshot
from tests.conftest import ADMIN_PASSWORD, client_for
from tests.factories import new_product_id
from tests.onboarding.helpers import onboard


@dataclass
class Endpoint:
    """A JSON endpoint, the host it is served at, and how to authenticate there."""

    name: str
    method: str
    path: str
    host: str
    authorization: str
    valid_body: dict


def _endpoints(world, request_id: str, product_id: str) -> dict[str, Endpoint]:
    msp = f"Bearer {world.a.msp_token}"
    vendor = basic_header("vendor-admin", ADMIN_PASSWORD)
    tenant_admin = basic_header(world.a.tenant_admin_username, ADMIN_PASSWORD)
    tenant = world.a.domain
    registration = world.a.registration.pk
    product_ids = {"product_ids": [new_product_id()]}
    return {endpoint.name: endpoint for endpoint in [
        Endpoint("ztp_lookup", "post", "/api/v1/ztp/lookup", "localhost", f"Bearer {world.provisioning_key}",
                 {"product_id": new_product_id(), "facts": {}}),
        Endpoint("ztp_report", "post", "/api/v1/ztp/report", "localhost", f"Bearer {world.provisioning_key}",
                 {"product_id": new_product_id(), "status": "onboarded", "director_url": "http://acme.localhost",
                  "certificate_serial": "01"}),
        Endpoint("msp_claim", "post", "/api/v1/msp/products/claim", "localhost", msp, product_ids),
        Endpoint("msp_map", "post", "/api/v1/msp/products/map", "localhost", msp,
                 {**product_ids, "tenant_registration": registration}),
        Endpoint("msp_unmap", "post", "/api/v1/msp/products/unmap", "localhost", msp, product_ids),
        Endpoint("msp_register", "post", "/api/v1/msp/tenant-registrations", "localhost", msp,
                 {"name": "Bad input", "management_url": "https://bad-input.director.example",
                  "access_key": "k" * 32}),
        Endpoint("msp_registration_patch", "patch", f"/api/v1/msp/tenant-registrations/{registration}", "localhost",
                 msp, {"name": "Acme renamed"}),
        Endpoint("msp_rotate", "post", f"/api/v1/msp/tenant-registrations/{registration}/rotate", "localhost", msp,
                 {"grace_seconds": 0}),
        Endpoint("msp_hosted_tenant", "post", "/api/v1/msp/hosted-tenants", "localhost", msp,
                 {"name": "Bad input", "schema_name": "bad_input", "domain": "bad-input.localhost"}),
        Endpoint("msp_token", "post", "/api/v1/msp/tokens", "localhost",
                 basic_header(world.a.msp_user.username, ADMIN_PASSWORD), {"name": "automation"}),
        Endpoint("vendor_msp", "post", "/api/v1/vendor/msps", "localhost", vendor, {"name": "Bad input MSP"}),
        Endpoint("vendor_allocate", "post", f"/api/v1/vendor/msps/{world.a.msp.slug}/allocate", "localhost",
                 vendor, product_ids),
        Endpoint("onboard", "post", "/api/v1/onboard", tenant, f"Bearer {world.a.tenant_access_key}",
                 {"product_id": new_product_id(), "csr": "-----BEGIN CERTIFICATE REQUEST-----", "facts": {}}),
        Endpoint("director_approve", "post", f"/api/v1/director/onboard-requests/{request_id}/approve", tenant,
                 tenant_admin, {"tags": ["lab"], "note": ""}),
        Endpoint("director_reject", "post", f"/api/v1/director/onboard-requests/{request_id}/reject", tenant,
                 tenant_admin, {"note": ""}),
        Endpoint("director_revoke", "post", f"/api/v1/director/edge-controllers/{product_id}/revoke-certificate",
                 tenant, tenant_admin, {"reason": "key_compromise"}),
        Endpoint("director_decommission", "post", f"/api/v1/director/edge-controllers/{product_id}/decommission",
                 tenant, tenant_admin, {"reason": ""}),
        Endpoint("director_policy", "post", "/api/v1/director/policies", tenant, tenant_admin,
                 {"name": "base", "kind": "auto", "body": {}}),
        Endpoint("director_manual_config", "put", f"/api/v1/director/edge-controllers/{product_id}/manual-config",
                 tenant, tenant_admin, {"body": {}}),
    ]}


ENDPOINT_NAMES = [
    "ztp_lookup", "ztp_report", "msp_claim", "msp_map", "msp_unmap", "msp_register", "msp_registration_patch",
    "msp_rotate", "msp_hosted_tenant", "msp_token", "vendor_msp", "vendor_allocate", "onboard", "director_approve",
    "director_reject", "director_revoke", "director_decommission", "director_policy", "director_manual_config",
]


@pytest.fixture
def endpoints(world):
    """Every JSON endpoint, with a pending onboard request at tenant A for the Director endpoints."""
    pending = onboard(world.a)
    return _endpoints(world, pending.request_id, pending.product_id)


def send(endpoint: Endpoint, body: bytes, content_type: str = "application/json"):
    client = client_for(endpoint.host)
    return getattr(client, endpoint.method)(endpoint.path, body, content_type=content_type,
                                            HTTP_AUTHORIZATION=endpoint.authorization)


def _oversized_body() -> bytes:
    return json.dumps({"padding": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}).encode()


# (case, body, content type, status, code): the same response at every endpoint.
UNIFORM_CASES = [
    ("truncated_json", b'{"product_id": ', "application/json", 400, "malformed_body"),
    ("not_json", b"product_id=EC100", "application/json", 400, "malformed_body"),
    ("invalid_utf8", b'{"name": "\xff\xfe"}', "application/json", 400, "malformed_body"),
    ("nan_literal", b'{"grace_seconds": NaN}', "application/json", 400, "malformed_body"),
    ("deeply_nested", b"[" * 5_000 + b"]" * 5_000, "application/json", 400, "malformed_body"),
    ("json_list", b'[{"name": "x"}]', "application/json", 400, "invalid"),
    ("json_string", b'"text"', "application/json", 400, "invalid"),
    ("json_number", b"42", "application/json", 400, "invalid"),
    ("json_null", b"null", "application/json", 400, "null"),
    ("text_plain", b'{"name": "x"}', "text/plain", 415, "unsupported_media_type"),
    ("form_encoded", b"name=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ("multipart", b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--b--\r\n',
     "multipart/form-data; boundary=b", 415, "unsupported_media_type"),
    ("xml", b"<name>x</name>", "application/xml", 415, "unsupported_media_type"),
    ("oversized", None, "application/json", 413, "body_too_large"),
]


@pytest.mark.parametrize("endpoint_name", ENDPOINT_NAMES)
@pytest.mark.parametrize(("case", "body", "content_type", "status", "code"), UNIFORM_CASES,
                         ids=[case[0] for case in UNIFORM_CASES])
def test_bad_body_rejected_without_writes(world, endpoints, endpoint_name, case, body, content_type, status, code):
    endpoint = endpoints[endpoint_name]
    before = snapshot(world)

    response = send(endpoint, _oversized_body() if body is None else body, content_type)

    assert_error(response, status, code)
    assert snapshot(world) == before


# Endpoints where an empty body is a valid request (every field has a default) are left out.
EMPTY_BODY_CODES = {
    "ztp_lookup": "required", "ztp_report": "required", "msp_claim": "required", "msp_map": "required",
    "msp_unmap": "required", "msp_register": "required", "msp_registration_patch": "invalid",
    "msp_hosted_tenant": "required", "vendor_msp": "required", "vendor_allocate": "required",
    "onboard": "required", "director_revoke": "required", "director_policy": "required",
    "director_manual_config": "required",
}


@pytest.mark.parametrize(("endpoint_name", "code"), sorted(EMPTY_BODY_CODES.items()))
@pytest.mark.parametrize("body", [b"", b"{}"], ids=["no_body", "empty_object"])
def test_empty_body_rejected_without_writes(world, endpoints, endpoint_name, code, body):
    before = snapshot(world)

    response = send(endpoints[endpoint_name], body)

    assert_error(response, 400, code)
    assert snapshot(world) == before


GARBAGE = {"a": [1, {"b": None}], "c": "d"}

# (endpoint, field, wrong value, code): an object, list, number or null where the field wants another type.
WRONG_TYPES = [
    ("ztp_lookup", "product_id", GARBAGE, "invalid"),
    ("ztp_lookup", "facts", ["firmware"], "not_a_dict"),
    ("ztp_report", "director_url", ["http://acme.localhost"], "invalid"),
    ("ztp_report", "status", None, "null"),
    ("msp_claim", "product_ids", GARBAGE, "not_a_list"),
    ("msp_claim", "product_ids", [GARBAGE], "invalid"),
    ("msp_claim", "product_ids", None, "null"),
    ("msp_map", "tenant_registration", "first", "invalid"),
    ("msp_map", "tenant_registration", GARBAGE, "invalid"),
    ("msp_unmap", "product_ids", "EC100:7c9e6679-7425-40de-944b-e07fc1f90ae7", "not_a_list"),
    ("msp_register", "management_url", GARBAGE, "invalid"),
    ("msp_register", "access_key", None, "null"),
    ("msp_registration_patch", "name", [], "invalid"),
    ("msp_rotate", "grace_seconds", "soon", "invalid"),
    ("msp_rotate", "grace_seconds", -1, "min_value"),
    ("msp_rotate", "grace_seconds", 10**30, "max_value"),
    ("msp_hosted_tenant", "schema_name", GARBAGE, "invalid"),
    ("msp_hosted_tenant", "register", "perhaps", "invalid"),
    ("msp_token", "name", GARBAGE, "invalid"),
    ("vendor_msp", "name", None, "null"),
    ("vendor_allocate", "product_ids", [], "empty"),
    ("onboard", "csr", GARBAGE, "invalid"),
    ("onboard", "facts", "firmware 1.0", "not_a_dict"),
    ("onboard", "product_id", None, "null"),
    ("director_approve", "tags", "lab", "not_a_list"),
    ("director_approve", "tags", [GARBAGE], "invalid"),
    ("director_reject", "note", GARBAGE, "invalid"),
    ("director_revoke", "reason", GARBAGE, "invalid_choice"),
    ("director_revoke", "reason", "superseded", "invalid_choice"),
    ("director_decommission", "reason", [1, 2], "invalid"),
    ("director_policy", "kind", GARBAGE, "invalid_choice"),
    ("director_policy", "tags", "lab", "not_a_list"),
]


@pytest.mark.parametrize(("endpoint_name", "field", "value", "code"), WRONG_TYPES,
                         ids=[f"{case[0]}-{case[1]}-{type(case[2]).__name__}" for case in WRONG_TYPES])
def test_wrong_json_type_rejected_without_writes(world, endpoints, endpoint_name, field, value, code):
    endpoint = endpoints[endpoint_name]
    before = snapshot(world)

    response = send(endpoint, json.dumps({**endpoint.valid_body, field: value}).encode())

    body = assert_error(response, 400, code)
    assert field in body["errors"], body
    assert snapshot(world) == before


LONG = "x" * 5000

# (endpoint, field, over-long value, code): one field over its limit, the rest of the body valid.
LONG_STRINGS = [
    ("ztp_lookup", "product_id", LONG, "max_length"),
    ("ztp_lookup", "facts", {"firmware": LONG}, "invalid"),
    ("ztp_report", "product_id", LONG, "max_length"),
    ("ztp_report", "director_url", LONG, "max_length"),
    ("ztp_report", "certificate_serial", LONG, "max_length"),
    ("msp_claim", "product_ids", [LONG], "max_length"),
    ("msp_map", "product_ids", [LONG], "max_length"),
    ("msp_unmap", "product_ids", [LONG], "max_length"),
    ("msp_register", "name", LONG, "max_length"),
    ("msp_register", "management_url", LONG, "max_length"),
    ("msp_register", "access_key", LONG, "max_length"),
    ("msp_registration_patch", "name", LONG, "max_length"),
    ("msp_registration_patch", "management_url", LONG, "max_length"),
    ("msp_registration_patch", "access_key", LONG, "max_length"),
    ("msp_hosted_tenant", "name", LONG, "max_length"),
    ("msp_hosted_tenant", "schema_name", LONG, "max_length"),
    ("msp_hosted_tenant", "domain", LONG, "max_length"),
    ("msp_hosted_tenant", "admin_username", LONG, "max_length"),
    ("msp_hosted_tenant", "admin_password", LONG, "max_length"),
    ("msp_token", "name", LONG, "max_length"),
    ("vendor_msp", "name", LONG, "max_length"),
    ("vendor_msp", "slug", LONG, "max_length"),
    ("vendor_allocate", "product_ids", [LONG], "max_length"),
    ("onboard", "product_id", LONG, "max_length"),
    ("onboard", "csr", "x" * 20_000, "max_length"),
    ("onboard", "facts", {"serial": LONG}, "invalid"),
    ("onboard", "facts", {f"mac{index}": "x" for index in range(51)}, "invalid"),
    ("director_approve", "tags", [LONG], "max_length"),
    ("director_approve", "note", LONG, "max_length"),
    ("director_reject", "note", LONG, "max_length"),
    ("director_revoke", "reason", LONG, "invalid_choice"),
    ("director_decommission", "reason", LONG, "max_length"),
    ("director_policy", "name", LONG, "max_length"),
    ("director_policy", "description", LONG, "max_length"),
    ("director_policy", "tags", [LONG], "max_length"),
]


@pytest.mark.parametrize(("endpoint_name", "field", "value", "code"), LONG_STRINGS,
                         ids=[f"{case[0]}-{case[1]}" for case in LONG_STRINGS])
def test_overlong_field_rejected_without_writes(world, endpoints, endpoint_name, field, value, code):
    endpoint = endpoints[endpoint_name]
    before = snapshot(world)

    response = send(endpoint, json.dumps({**endpoint.valid_body, field: value}).encode())

    body = assert_error(response, 400, code)
    assert field in body["errors"], body
    assert snapshot(world) == before


def test_non_object_body_detail_names_the_problem(world, endpoints):
    response = send(endpoints["onboard"], b"[]")

    body = assert_error(response, 400, "invalid")
    assert "Expected a dictionary" in body["detail"], body
