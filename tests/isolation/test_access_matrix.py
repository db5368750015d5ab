"""Every endpoint and page, called by every persona: each gets exactly the access the matrix gives it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass

import pytest
from django.urls import URLResolver, get_resolver

from tests.isolation.conftest import (
    ANONYMOUS,
    PERSONAS,
    default_authorization,
    est_authorization,
    persona_client,
    poll_authorization,
)
from tests.isolation.matrix import (
    ALLOWED,
    EST_AUTH,
    OPS,
    POLL_AUTH,
    PUBLIC,
    ROWS,
    TENANT,
    cases,
    classify,
)

URLCONFS = {PUBLIC: "config.urls_public", TENANT: "config.urls_tenant", OPS: "ops.urls"}


def _host(row, world) -> str:
    return world.a.domain if row.urlconf == TENANT else "localhost"


def _authorization(row, persona, world, objects):
    if row.auth == EST_AUTH:
        return est_authorization(persona, world, objects.ec_product_id)
    if row.auth == POLL_AUTH:
        return poll_authorization(persona, world, objects)
    return default_authorization(persona, world)


def send(row, persona, world, objects):
    """Send the row's request as ``persona`` and return the response."""
    client = persona_client(persona, _host(row, world), objects, _authorization(row, persona, world, objects))
    method = getattr(client, row.method)
    url = row.url(objects)
    body = row.request_body(objects)
    if row.method == "get":
        return method(url)
    if row.body_format == "form":
        return method(url, body or {})
    if row.body_format == "pkcs10":
        return method(url, body, content_type="application/pkcs10")
    return method(url, json.dumps(body) if body is not None else "", content_type="application/json")


@pytest.mark.parametrize(("row", "persona"), [pytest.param(row, persona, id=f"{row.name}[{persona}]")
                                              for row, persona in cases()])
def test_access(row, persona, world, matrix_objects):
    response = send(row, persona, world, matrix_objects)

    outcome = classify(response)

    detail = response.get("Location") or response.content[:300]
    assert outcome == row.expected[persona], (
        f"{row.method.upper()} {row.url(matrix_objects)} as {persona}: got {response.status_code} ({outcome}), "
        f"expected {row.expected[persona]}; {detail!r}"
    )


def _routes(resolver, prefix: str = ""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern)


@pytest.mark.parametrize("urlconf", [PUBLIC, TENANT, OPS])
def test_matrix_lists_every_url_pattern(urlconf):
    served = set(_routes(get_resolver(URLCONFS[urlconf])))
    listed = {row.route for row in ROWS if row.urlconf == urlconf}

    assert sorted(served - listed) == [], "URL patterns without a row in tests/isolation/matrix.py"
    assert sorted(listed - served) == [], "rows of tests/isolation/matrix.py whose URL pattern is gone"


def test_schema_urlconf_routes_are_served():
    served = set(_routes(get_resolver(URLCONFS[PUBLIC]))) | set(_routes(get_resolver(URLCONFS[TENANT])))

    documented = set(_routes(get_resolver("config.urls_schema")))

    # config.urls_schema only feeds the OpenAPI schema; each of its routes must be a served, listed one.
    assert sorted(documented - served) == []


def test_matrix_row_names_are_unique():
    counts = Counter(row.name for row in ROWS)

    assert [name for name, count in counts.items() if count > 1] == []


def _other_urlconf_routes(urlconf: str) -> set[str]:
    other = PUBLIC if urlconf == TENANT else TENANT
    return set(_routes(get_resolver(URLCONFS[other])))


# Each row sent by the persona it allows to the other kind of host: a route that host does not serve is a 404.
WRONG_HOST_CASES = [
    (row, persona) for row, persona in cases()
    if row.expected[persona] == ALLOWED and row.route not in _other_urlconf_routes(row.urlconf)
]


@pytest.mark.parametrize(("row", "persona"), [pytest.param(row, persona, id=f"{row.name}[{persona}]")
                                              for row, persona in WRONG_HOST_CASES])
def test_route_not_served_at_other_host_kind(row, persona, world, matrix_objects):
    wrong_host = "localhost" if row.urlconf == TENANT else world.b.domain
    client = persona_client(persona, wrong_host, matrix_objects,
                            _authorization(row, persona, world, matrix_objects))

    response = getattr(client, row.method)(row.url(matrix_objects))

    assert response.status_code == 404


@pytest.mark.parametrize("row", [pytest.param(row, id=row.name) for row in ROWS])
def test_route_at_unknown_host_is_404(row, world, matrix_objects):
    client = persona_client(ANONYMOUS, "unknown.localhost", matrix_objects, None)

    response = getattr(client, row.method)(row.url(matrix_objects))

    assert response.status_code == 404
    assert response.json()["code"] == "unknown_host"


@dataclass
class LiveResponse:
    """The parts of an HTTP response that :func:`classify` reads, from a request to the live web server."""

    status_code: int
    headers: dict
    content: bytes

    def __getitem__(self, name: str) -> str:
        return self.headers[name]

    def get(self, name: str, default=None):
        return self.headers.get(name, default)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def send_live(row, persona, world, objects, port: int) -> LiveResponse:
    """Send a GET row's request to the live uvicorn server, which serves the long-poll route before Django."""
    host = world.a.domain if row.urlconf == TENANT else "localhost"
    headers = {"Host": f"{host}:{port}"}
    authorization = _authorization(row, persona, world, objects)
    if authorization:
        headers["Authorization"] = authorization
    if persona in objects.sessions:
        headers["Cookie"] = f"sessionid={objects.sessions[persona]}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}{row.url(objects)}", headers=headers)
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=30) as response:
            return LiveResponse(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return LiveResponse(error.code, dict(error.headers), error.read())


# Only reads: the live server commits what it changes, and the matrix objects are shared by every test.
LIVE_CASES = cases(select=lambda row: row.method == "get")


@pytest.mark.e2e
@pytest.mark.parametrize(("row", "persona"), [pytest.param(row, persona, id=f"{row.name}[{persona}]")
                                              for row, persona in LIVE_CASES])
def test_access_live(row, persona, world, committed, matrix_objects, live_stack):
    response = send_live(row, persona, world, matrix_objects, live_stack.web_port)

    outcome = classify(response)

    assert outcome == row.expected[persona], (
        f"GET {row.url(matrix_objects)} as {persona} over uvicorn: got {response.status_code} ({outcome}), "
        f"expected {row.expected[persona]}; {response.get('Location') or response.content[:300]!r}"
    )


@pytest.mark.parametrize("persona", PERSONAS)
def test_metrics_need_metrics_token(persona, world, matrix_objects, settings):
    settings.ZTSP_METRICS_TOKEN = "metrics-token-of-the-scraper"
    client = persona_client(persona, "localhost", matrix_objects, default_authorization(persona, world))

    response = client.get("/metrics")

    # No persona's credential is the metrics token: MSP, tenant and EC keys open nothing here.
    assert response.status_code == 401
