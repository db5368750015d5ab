"""Clients and product helpers for the MSP and vendor API tests.

Products are made through the real services, each with a fresh UUID, so a
test never depends on products that another test or the live stack left.
"""

from __future__ import annotations

import base64
import io

import pytest
from django.db import connection
from rest_framework.test import APIClient

from audit.models import AuditEvent
from tests.factories import VENDOR, new_product_id

# Django's test client sends requests from this address, so HTTP audit events carry it.
CLIENT_ADDRESS = "127.0.0.1"


def bearer_client(token: str) -> APIClient:
    client = APIClient(HTTP_HOST="localhost")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def basic_client(username: str, password: str) -> APIClient:
    client = APIClient(HTTP_HOST="localhost")
    client.credentials(HTTP_AUTHORIZATION=_basic_header(username, password))
    return client


def _basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def client_a(world) -> APIClient:
    """The API client of MSP A, authenticated with its API token."""
    return bearer_client(world.a.msp_token)


@pytest.fixture
def client_b(world) -> APIClient:
    """The API client of MSP B, authenticated with its API token."""
    return bearer_client(world.b.msp_token)


@pytest.fixture
def vendor_client(world) -> APIClient:
    """An API client signed in (session) as the vendor's staff superuser."""
    client = APIClient(HTTP_HOST="localhost")
    client.force_login(world.vendor_admin)
    return client


def imported_products(count: int = 1, *, model: str = "EC100") -> list[str]:
    """Import ``count`` new products that belong to no MSP yet; return their Product IDs."""
    from provisioning.services.importing import import_products

    product_ids = [new_product_id(model) for _ in range(count)]
    import_products(io.BytesIO("\n".join(product_ids).encode()), actor=VENDOR)
    return product_ids


def allocated_products(msp, count: int = 1) -> list[str]:
    """Import ``count`` new products and allocate them to ``msp`` (not claimed)."""
    from msp.services.products import allocate_products, numbered

    product_ids = imported_products(count)
    allocate_products(msp, numbered(product_ids), actor=VENDOR)
    return product_ids


def claimed_products(msp, count: int = 1) -> list[str]:
    """Import, allocate and claim ``count`` new products for ``msp`` (not mapped)."""
    from msp.services.products import claim_products, numbered

    product_ids = allocated_products(msp, count)
    claim_products(msp, numbered(product_ids), actor=VENDOR)
    return product_ids


def audit_events(action: str, object_id: str | None = None):
    """Return the audit events of ``action``, optionally for one object, newest first."""
    events = AuditEvent.objects.filter(action=action)
    if object_id is not None:
        events = events.filter(object_id=object_id)
    return events


def row_text(table: str, pk: int) -> str:
    """Return every column of one row as JSON text, to search it for a secret."""
    # ``table`` comes from a model's _meta, never from request data.
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT row_to_json(t)::text FROM "{table}" AS t WHERE id = %s', [pk])  # noqa: S608
        return cursor.fetchone()[0]
