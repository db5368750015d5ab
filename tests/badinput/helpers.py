"""Snapshots that show a rejected request wrote nothing, and the clients of the bad-input tests."""

from __future__ import annotations

import base64
import json

from django.db import connection
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

# Public-schema models whose row counts a rejected request must leave alone.
PUBLIC_MODELS = [
    ("msp", "MSP"), ("msp", "MSPApiToken"), ("msp", "TenantRegistration"), ("msp", "MSPSignupRequest"),
    ("provisioning", "Product"), ("provisioning", "ImportBatch"), ("tenants", "Tenant"), ("tenants", "Domain"),
    ("tenants", "TenantCreationJob"), ("audit", "AuditEvent"),
]
# Tenant-schema models, counted in each tenant of the test world.
TENANT_MODELS = [
    ("onboarding", "EdgeController"), ("onboarding", "OnboardRequest"), ("onboarding", "Tag"),
    ("pki", "IssuedCertificate"), ("policies", "Policy"),
]


def _count(app_label: str, model_name: str) -> int:
    from django.apps import apps

    return apps.get_model(app_label, model_name).objects.count()


def schema_names() -> list[str]:
    """Return every schema in the database, sorted: a new tenant would add one."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace ORDER BY nspname")
        return [row[0] for row in cursor.fetchall()]


def snapshot(world) -> dict:
    """Count the rows of every model a request could write, in the public schema and both tenants."""
    connection.set_schema_to_public()
    counts = {f"public.{model}": _count(app, model) for app, model in PUBLIC_MODELS}
    for persona in (world.a, world.b):
        schema = persona.tenant.schema_name
        with schema_context(schema):
            counts.update({f"{schema}.{model}": _count(app, model) for app, model in TENANT_MODELS})
    counts["schemas"] = schema_names()
    return counts


def assert_error(response, status: int, code: str) -> dict:
    """Check the status and the JSON ``code`` of an error response; return the body."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = json.loads(response.content)
    assert body["code"] == code, body
    assert body["detail"], body
    return body


def msp_client(world, persona=None) -> APIClient:
    """An API client of the persona's MSP (MSP A by default), authenticated with its API token."""
    persona = persona or world.a
    client = APIClient(HTTP_HOST="localhost")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {persona.msp_token}")
    return client


def vendor_client(world) -> APIClient:
    client = APIClient(HTTP_HOST="localhost")
    client.force_login(world.vendor_admin)
    return client


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def onboard_client(persona) -> APIClient:
    """A client of the persona's tenant host that presents the tenant access key, like an EC."""
    client = APIClient(HTTP_HOST=persona.domain)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {persona.tenant_access_key}")
    return client
