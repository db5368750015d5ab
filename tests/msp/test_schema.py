"""The OpenAPI schema at ``/api/schema/`` covers the MSP and vendor endpoints."""

from __future__ import annotations

import pytest

from tests.conftest import client_for


@pytest.mark.parametrize("path", [
    "/api/v1/msp/products/{product_id}/route",
    "/api/v1/msp/products/{product_id}/lookups",
    "/api/v1/msp/tenant-registrations/{id}/rotate",
    "/api/v1/vendor/products/{product_id}/route",
    "/api/v1/vendor/products/{product_id}/lookups",
])
def test_schema_lists_endpoint(world, path):
    response = client_for("localhost").get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    assert path in response.json()["paths"]


def test_schema_describes_msp_token(world):
    schemes = client_for("localhost").get("/api/schema/", {"format": "json"}).json()["components"]["securitySchemes"]

    assert schemes["mspToken"] == {"type": "http", "scheme": "bearer",
                                   "description": "An MSP API token: ztsp_msp_..."}
