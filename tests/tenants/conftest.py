"""Helpers for tests that create and delete hosted tenants.

Each test runs in a transaction that is rolled back, and PostgreSQL rolls
back schema DDL too, so the schemas these tests make or rename disappear
with it. The world's tenants acme and globex are only read.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

from tests.msp.conftest import bearer_client


def unique_names(prefix: str = "t") -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return f"{prefix}_{suffix}", f"{prefix}-{suffix}.localhost"


def schemas_like(pattern: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s ORDER BY nspname", [pattern])
        return [row[0] for row in cursor.fetchall()]


def schema_exists(schema_name: str) -> bool:
    return schemas_like(schema_name.replace("_", r"\_")) == [schema_name]


@pytest.fixture
def client_a(world):
    """The API client of MSP A, authenticated with its API token."""
    return bearer_client(world.a.msp_token)


@pytest.fixture
def client_b(world):
    """The API client of MSP B, authenticated with its API token."""
    return bearer_client(world.b.msp_token)
