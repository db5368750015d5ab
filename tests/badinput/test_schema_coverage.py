"""Every API route that either host serves is in the OpenAPI schema, so schemathesis reaches it."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from tests.conftest import client_for


def _api_routes(urlconf: str) -> set[str]:
    """Return the API routes of ``urlconf`` in OpenAPI form, such as ``/api/v1/onboard/{request_id}``."""
    routes: set[str] = set()

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith(("api/v1/", ".well-known/")):
                routes.add("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))

    walk(get_resolver(urlconf).url_patterns, "")
    return routes


@pytest.mark.parametrize("urlconf", ["config.urls_public", "config.urls_tenant"])
def test_schema_lists_every_api_route(world, urlconf):
    paths = set(client_for("localhost").get("/api/schema/", {"format": "json"}).json()["paths"])
    # drf-spectacular names an integer primary key "id" in the path.
    served = {re.sub(r"\{pk\}", "{id}", route) for route in _api_routes(urlconf)}

    assert served - paths == set()
