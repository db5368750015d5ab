"""Creating hosted Director tenants over the MSP API.

Creating a tenant makes a PostgreSQL schema and runs the tenant migrations,
so only two tests here create one. Every test that expects a rejection runs
with ``no_schema_creation``, which fails the test instead of creating a
schema if the rejection does not happen.
"""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import schema_context

from msp.models import TenantRegistration
from tenants.models import Domain, Tenant
from tenants.services import management_url_for, tenant_access_key_matches
from tests.conftest import ADMIN_PASSWORD
from tests.msp.conftest import CLIENT_ADDRESS, audit_events, basic_client, row_text

HOSTED_TENANTS_URL = "/api/v1/msp/hosted-tenants"


class SchemaCreationAttempted(AssertionError):
    pass


@pytest.fixture
def no_schema_creation(monkeypatch):
    """Make any attempt to save a new Tenant fail the test before a schema is created."""

    def reject_save(self, *args, **kwargs):
        raise SchemaCreationAttempted(f"the request reached Tenant.save for schema {self.schema_name!r}")

    monkeypatch.setattr(Tenant, "save", reject_save)


def unique_names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return f"t_{suffix}", f"t-{suffix}.localhost"


def create(client, **fields):
    schema_name, domain = unique_names()
    body = {"name": f"Hosted {schema_name}", "schema_name": schema_name, "domain": domain, **fields}
    return client.post(HOSTED_TENANTS_URL, body, format="json")


def schema_exists(schema_name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema_name])
        return cursor.fetchone() is not None


def test_hosted_tenant_created_and_registered(world, client_a):
    schema_name, domain = unique_names()
    body = {"name": f"Hosted {schema_name}", "schema_name": schema_name, "domain": domain.upper(),
            "admin_username": "ops", "admin_password": ADMIN_PASSWORD}

    response = client_a.post(HOSTED_TENANTS_URL, body, format="json")

    assert response.status_code == 201, response.content
    result = response.json()
    access_key = result["access_key"]
    url = management_url_for(domain)
    assert result["schema_name"] == schema_name
    assert result["domain"] == domain
    assert result["management_url"] == url

    # The schema, its domain and the tenant row with the caller as owner.
    tenant = Tenant.objects.get(schema_name=schema_name)
    assert tenant.owner_msp_id == world.a.msp.pk
    assert schema_exists(schema_name)
    assert Domain.objects.get(domain=domain).tenant_id == tenant.pk

    # The access key works at the tenant and is kept there only as a hash.
    assert tenant_access_key_matches(tenant, access_key)
    assert access_key not in row_text(Tenant._meta.db_table, tenant.pk)

    # The registration points lookups at the new tenant with the same key.
    registration = TenantRegistration.objects.get(pk=result["tenant_registration"])
    assert registration.msp_id == world.a.msp.pk
    assert registration.management_url == url

    # The admin lives in the tenant's schema only.
    with schema_context(schema_name):
        assert get_user_model().objects.get(username="ops").is_staff

    # Each step is audited with the caller and its address.
    tenant_event = audit_events("tenant.create", schema_name).get()
    assert tenant_event.msp_id == world.a.msp.pk
    assert tenant_event.actor_type == "msp_token"
    assert tenant_event.source_address == CLIENT_ADDRESS
    registration_event = audit_events("tenant_registration.create", str(registration.pk)).get()
    assert registration_event.source_address == CLIENT_ADDRESS
    admin_event = audit_events("tenant.user.create", "ops").get(tenant_schema=schema_name)
    assert admin_event.source_address == CLIENT_ADDRESS

    # The key is shown once: no later GET returns it.
    assert access_key not in client_a.get("/api/v1/msp/tenant-registrations").content.decode()
    assert access_key not in client_a.get(f"/api/v1/msp/tenant-registrations/{registration.pk}").content.decode()


def test_hosted_tenant_without_register(world, client_a):
    response = create(client_a, register=False)

    assert response.status_code == 201, response.content
    result = response.json()
    assert result["tenant_registration"] is None
    assert result["access_key"].startswith("ztsp_tk_")
    assert not TenantRegistration.objects.filter(management_url=result["management_url"]).exists()
    assert Tenant.objects.get(schema_name=result["schema_name"]).owner_msp_id == world.a.msp.pk


@pytest.mark.parametrize("schema_name", [
    "1tenant",
    "pg_tenant",
    "public",
    "has-hyphen",
    "has space",
    "tenant;drop",
])
def test_hosted_tenant_rejects_invalid_schema(world, client_a, no_schema_creation, schema_name):
    response = create(client_a, schema_name=schema_name)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_schema_name"
    assert "schema_name" in body["errors"]


def test_hosted_tenant_rejects_long_schema(world, client_a, no_schema_creation):
    # PostgreSQL truncates identifiers to 63 bytes, so a longer name could alias another schema.
    response = create(client_a, schema_name="x" * 64)

    assert response.status_code == 400
    assert "schema_name" in response.json()["errors"]


def test_hosted_tenant_rejects_system_schema(world, client_a, no_schema_creation):
    response = create(client_a, schema_name="information_schema")

    assert response.status_code == 400


@pytest.mark.parametrize("domain", [
    "bad_domain.localhost",
    "-leading.localhost",
    "double..dot.localhost",
    "https://x.localhost",
    "x.localhost:8000",
    "x.localhost/path",
    "a" * 64 + ".localhost",
])
def test_hosted_tenant_rejects_invalid_domain(world, client_a, no_schema_creation, domain):
    response = create(client_a, domain=domain)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_domain"
    assert "domain" in body["errors"]


def test_hosted_tenant_rejects_missing_fields(world, client_a, no_schema_creation):
    response = client_a.post(HOSTED_TENANTS_URL, {"name": "x"}, format="json")

    assert response.status_code == 400
    assert {"schema_name", "domain"} <= set(response.json()["errors"])


@pytest.mark.parametrize("domain_of", [
    lambda world: world.a.domain,
    lambda world: world.b.domain.upper(),
    lambda world: "localhost",
])
def test_hosted_tenant_duplicate_domain_conflicts(world, client_a, no_schema_creation, domain_of):
    response = create(client_a, domain=domain_of(world))

    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_domain"


@pytest.mark.parametrize("schema_name", ["acme", "GLOBEX"])
def test_hosted_tenant_duplicate_schema_conflicts(world, client_a, no_schema_creation, schema_name):
    response = create(client_a, schema_name=schema_name)

    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_schema_name"


def test_hosted_tenant_taken_registration_name(world, client_a, no_schema_creation):
    response = create(client_a, name=world.a.registration.name, register=True)

    assert response.status_code == 409


def test_hosted_tenant_rejects_vendor_staff(world, vendor_client, no_schema_creation):
    response = create(vendor_client)

    assert response.status_code == 403


def test_hosted_tenant_rejects_wrong_password(world, no_schema_creation):
    client = basic_client(world.a.msp_user.username, "wrong-password")

    response = create(client)

    assert response.status_code in (401, 403)
