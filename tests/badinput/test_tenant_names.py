"""Unsafe and colliding schema names and domains at hosted-tenant creation.

Three ways in create a hosted tenant: the MSP API, the MSP portal form and the
vendor's ``create_hosted_tenant`` command. Each rejects a reserved, unsafe or
malformed schema name or domain, and one that already exists, before any
schema is made. The API returns 400 (invalid) or 409 (taken) with the field's
code, the portal returns 400 with the message on the field, and the command
raises ``CommandError``.
"""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from tests.badinput.helpers import assert_error, msp_client, snapshot

HOSTED_URL = "/api/v1/msp/hosted-tenants"
PORTAL_URL = "/portal/tenants/hosted/"
ORPHAN_SCHEMA = "badinput_orphan"

# (schema name, code): schema names that the validation rejects, whatever the domain.
BAD_SCHEMA_NAMES = [
    ("public", "invalid_schema_name"),
    ("PUBLIC", "invalid_schema_name"),
    ("pg_catalog", "invalid_schema_name"),
    ("pg_toast", "invalid_schema_name"),
    ("pg_temp_1", "invalid_schema_name"),
    ("information_schema", "invalid_schema_name"),
    ("tenant_template", "invalid_schema_name"),
    ("tenant_template_2", "invalid_schema_name"),
    ("archived_acme_20260101", "invalid_schema_name"),
    ('acme"; DROP SCHEMA public CASCADE; --', "invalid_schema_name"),
    ("acme'", "invalid_schema_name"),
    ("ac;me", "invalid_schema_name"),
    ("new tenant", "invalid_schema_name"),
    ("new-tenant", "invalid_schema_name"),
    ("new.tenant", "invalid_schema_name"),
    ("1tenant", "invalid_schema_name"),
    ("_tenant", "invalid_schema_name"),
    ("t\u00fcnant", "invalid_schema_name"),
    ("$tenant", "invalid_schema_name"),
    ("acme", "duplicate_schema_name"),
    ("ACME", "duplicate_schema_name"),
    (" Globex ", "duplicate_schema_name"),
    (ORPHAN_SCHEMA, "duplicate_schema_name"),
]

# (domain, code): domains that the validation rejects, with a fresh valid schema name.
BAD_DOMAINS = [
    ("acme.localhost", "duplicate_domain"),
    ("ACME.Localhost", "duplicate_domain"),
    ("localhost", "duplicate_domain"),
    ("127.0.0.1", "duplicate_domain"),
    ("new tenant.localhost", "invalid_domain"),
    ("new_tenant.localhost", "invalid_domain"),
    ("new-tenant.localhost.", "invalid_domain"),
    ("-new.localhost", "invalid_domain"),
    ("new..localhost", "invalid_domain"),
    ("b\u00fccher.localhost", "invalid_domain"),
    ("[::1]", "invalid_domain"),
    ("new.localhost:8000", "invalid_domain"),
    ("http://new.localhost", "invalid_domain"),
    ("new.localhost/portal", "invalid_domain"),
    ("a" * 64 + ".localhost", "invalid_domain"),
    ("new.localhost;rm", "invalid_domain"),
    ("www.new-tenant.localhost", "invalid_domain"),
]


@pytest.fixture
def orphan_schema(world):
    """A schema that exists in PostgreSQL but belongs to no tenant, as one made by hand would."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {ORPHAN_SCHEMA}")
    yield ORPHAN_SCHEMA


def _api_create(world, schema_name: str, domain: str = "new-tenant.localhost"):
    body = {"name": "New tenant", "schema_name": schema_name, "domain": domain}
    return msp_client(world).post(HOSTED_URL, json.dumps(body), content_type="application/json")


def _portal_create(world, schema_name: str, domain: str = "new-tenant.localhost"):
    client = Client(HTTP_HOST="localhost")
    client.force_login(world.a.msp_user)
    return client.post(PORTAL_URL, {"hosted-name": "New tenant", "hosted-schema_name": schema_name,
                                    "hosted-domain": domain})


def _status_for(code: str) -> int:
    return 409 if code.startswith("duplicate") else 400


@pytest.mark.parametrize(("schema_name", "code"), BAD_SCHEMA_NAMES, ids=[name for name, _ in BAD_SCHEMA_NAMES])
def test_api_bad_schema_name_rejected(world, orphan_schema, schema_name, code):
    before = snapshot(world)

    response = _api_create(world, schema_name)

    body = assert_error(response, _status_for(code), code)
    assert list(body["errors"]) == ["schema_name"]
    assert snapshot(world) == before


@pytest.mark.parametrize(("domain", "code"), BAD_DOMAINS, ids=[domain[:40] for domain, _ in BAD_DOMAINS])
def test_api_bad_domain_rejected(world, domain, code):
    before = snapshot(world)

    response = _api_create(world, "new_tenant", domain)

    body = assert_error(response, _status_for(code), code)
    assert list(body["errors"]) == ["domain"]
    assert snapshot(world) == before


@pytest.mark.parametrize(("field", "value"), [("schema_name", "a" * 64), ("domain", "a" * 254), ("name", "n" * 201)])
def test_api_overlong_name_rejected(world, field, value):
    body = {"name": "New tenant", "schema_name": "new_tenant", "domain": "new-tenant.localhost", field: value}
    before = snapshot(world)

    response = msp_client(world).post(HOSTED_URL, json.dumps(body), content_type="application/json")

    assert_error(response, 400, "max_length")
    assert snapshot(world) == before


@pytest.mark.parametrize(("field", "value", "code"), [
    ("schema_name", "", "blank"), ("domain", "", "blank"), ("name", "", "blank"), ("schema_name", " ", "blank"),
    ("schema_name", "tenant\x00", "null_characters_not_allowed"),
    ("domain", "new\x00.localhost", "null_characters_not_allowed"),
])
def test_api_blank_or_nul_name_rejected(world, field, value, code):
    body = {"name": "New tenant", "schema_name": "new_tenant", "domain": "new-tenant.localhost", field: value}
    before = snapshot(world)

    response = msp_client(world).post(HOSTED_URL, json.dumps(body), content_type="application/json")

    assert_error(response, 400, code)
    assert snapshot(world) == before


def test_api_other_msps_domain_is_taken(world):
    # The detail names the domain only, not the MSP whose tenant serves it.
    before = snapshot(world)

    response = _api_create(world, "new_tenant", world.b.domain)

    body = assert_error(response, 409, "duplicate_domain")
    assert world.b.msp.slug not in body["detail"]
    assert snapshot(world) == before


@pytest.mark.parametrize(("schema_name", "code"), BAD_SCHEMA_NAMES, ids=[name for name, _ in BAD_SCHEMA_NAMES])
def test_portal_bad_schema_name_rejected(world, orphan_schema, schema_name, code):
    before = snapshot(world)

    response = _portal_create(world, schema_name)

    assert response.status_code == 400
    errors = response.context["hosted_form"].errors
    assert "schema_name" in errors, errors
    assert snapshot(world) == before


@pytest.mark.parametrize(("domain", "code"), BAD_DOMAINS, ids=[domain[:40] for domain, _ in BAD_DOMAINS])
def test_portal_bad_domain_rejected(world, domain, code):
    before = snapshot(world)

    response = _portal_create(world, "new_tenant", domain)

    assert response.status_code == 400
    errors = response.context["hosted_form"].errors
    assert list(errors) == ["domain"], errors
    assert snapshot(world) == before


@pytest.mark.parametrize(("schema_name", "code"), BAD_SCHEMA_NAMES, ids=[name for name, _ in BAD_SCHEMA_NAMES])
def test_command_bad_schema_name_rejected(world, orphan_schema, schema_name, code):
    before = snapshot(world)

    with pytest.raises(CommandError, match="Schema"):
        call_command("create_hosted_tenant", "--", schema_name, "new-tenant.localhost")

    assert snapshot(world) == before


@pytest.mark.parametrize(("domain", "code"), BAD_DOMAINS, ids=[domain[:40] for domain, _ in BAD_DOMAINS])
def test_command_bad_domain_rejected(world, domain, code):
    before = snapshot(world)

    with pytest.raises(CommandError, match="Domain"):
        # "--" ends the options, so a domain that starts with "-" is read as the argument it is.
        call_command("create_hosted_tenant", "new_tenant", "--", domain)

    assert snapshot(world) == before
