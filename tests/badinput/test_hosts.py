"""Odd and unknown Host headers: each is routed to the right tenant or gets a JSON 404 ``unknown_host``.

What is right:

* Host names are case-insensitive (RFC 4343), and ``acme.localhost.`` is the
  absolute form of ``acme.localhost``. Mixed case, a trailing dot and any port
  therefore reach the tenant whose domain it is.
* Every other host (unknown, not in ``ALLOWED_HOSTS``, an IPv6 or IP literal
  that is not a Provision Server host, Unicode or punycode names that no
  tenant has, empty or malformed) gets 404 ``unknown_host``. A malformed name
  gets the same response as an unknown one, so a scan learns nothing.

Nothing is ever written by a request to an unknown host.
"""

from __future__ import annotations

import socket

import pytest

from tests.badinput.helpers import assert_error, onboard_client, snapshot
from tests.conftest import client_for
from tests.factories import make_csr, new_product_id

CA_PATH = "/api/v1/pki/ca"

# Spellings of tenant A's host (acme.localhost) that must reach tenant A.
ACME_SPELLINGS = ["ACME.LOCALHOST", "Acme.Localhost", "acme.localhost.", "ACME.localhost.:8000",
                  "acme.localhost:8000", "acme.localhost:1"]

UNKNOWN_HOSTS = [
    "unknown.localhost",
    "evil.example",
    "[::1]",
    "[::1]:8000",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]",
    "[::1",
    "::1",
    "127.0.0.2",
    "0177.0.0.1",
    "xn--bcher-kva.localhost",
    "bücher.localhost",
    "\u0430cme.localhost",  # The first letter is a Cyrillic a.
    "",
    " ",
    "acme.localhost..",
    "acme..localhost",
    ".acme.localhost",
    "acme.localhost:",
    "acme.localhost:port",
    "acme.localhost:8000:8000",
    "acme.localhost@evil.example",
    "evil.example#acme.localhost",
    "acme.localhost/api",
    "acme.localhost acme.localhost",
    "acme.localhost,globex.localhost",
    "acme_corp.localhost",
    "a" * 300 + ".localhost",
    "%61cme.localhost",
    "acme.localhost\\",
]


@pytest.mark.parametrize("host", ACME_SPELLINGS)
def test_host_spelling_reaches_tenant(world, host):
    expected = client_for(world.a.domain).get(CA_PATH)

    response = client_for(host).get(CA_PATH)

    assert response.status_code == 200, response.content[:300]
    assert response.content == expected.content


@pytest.mark.parametrize("host", ["LOCALHOST", "localhost.", "localhost:8000", "127.0.0.1", "127.0.0.1:8000"])
def test_host_spelling_reaches_provision_server(world, host):
    response = client_for(host).get("/api/schema/", {"format": "json"})

    assert response.status_code == 200, response.content[:300]
    assert "/api/v1/ztp/lookup" in response.json()["paths"]


@pytest.mark.parametrize("host", ACME_SPELLINGS[:3])
def test_onboard_at_host_spelling_is_accepted(world, host):
    product_id = new_product_id()
    csr, _ = make_csr(product_id)
    client = onboard_client(world.a)
    client.defaults["HTTP_HOST"] = host

    response = client.post("/api/v1/onboard", {"product_id": product_id, "csr": csr}, format="json")

    assert response.status_code == 202, response.content[:300]


@pytest.mark.parametrize("host", UNKNOWN_HOSTS)
def test_unknown_host_returns_404(world, host):
    response = client_for(host).get(CA_PATH)

    assert_error(response, 404, "unknown_host")


@pytest.mark.parametrize("host", UNKNOWN_HOSTS)
def test_onboard_at_unknown_host_writes_nothing(world, host):
    product_id = new_product_id()
    csr, _ = make_csr(product_id)
    client = onboard_client(world.a)
    client.defaults["HTTP_HOST"] = host
    before = snapshot(world)

    response = client.post("/api/v1/onboard", {"product_id": product_id, "csr": csr}, format="json")

    assert_error(response, 404, "unknown_host")
    assert snapshot(world) == before


@pytest.mark.parametrize("path", ["/api/v1/ztp/lookup", "/api/v1/msp/products/claim", "/portal/", "/admin/"])
def test_unknown_host_returns_404_on_every_path(world, path):
    response = client_for("unknown.localhost").post(path, {}, format="json")

    assert_error(response, 404, "unknown_host")


def test_provision_server_paths_not_served_at_tenant_host(world):
    response = client_for("ACME.localhost").post("/api/v1/ztp/lookup", {}, format="json")

    assert_error(response, 404, "not_found")


def test_tenant_paths_not_served_at_provision_server_host(world):
    response = client_for("LOCALHOST").post("/api/v1/onboard", {}, format="json")

    assert_error(response, 404, "not_found")


def test_www_prefix_reaches_same_tenant(world):
    # django-tenants strips a leading "www.", so www.acme.localhost reaches acme, never another tenant.
    expected = client_for(world.a.domain).get(CA_PATH)

    response = client_for("www.acme.localhost").get(CA_PATH)

    assert response.status_code == 200
    assert response.content == expected.content


# The live web server: uvicorn parses the request line and headers before Django.


def _raw_request(port: int, host_line: bytes | None, path: str = CA_PATH, *, version: bytes = b"HTTP/1.1") -> bytes:
    """Send one GET with ``host_line`` as the raw Host header (None: no Host header); return the response."""
    request = b"GET " + path.encode() + b" " + version + b"\r\n"
    if host_line is not None:
        request += b"Host: " + host_line + b"\r\n"
    request += b"Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


@pytest.mark.e2e
@pytest.mark.parametrize("host", [b"ACME.localhost", b"acme.localhost.", b"Acme.Localhost."])
@pytest.mark.parametrize("path", [CA_PATH, "/api/v1/onboard/7c9e6679-7425-40de-944b-e07fc1f90ae7?wait=0"])
def test_live_host_spelling_reaches_tenant(world, live_stack, host, path):
    response = _raw_request(live_stack.web_port, host + f":{live_stack.web_port}".encode(), path)

    # The CA chain returns 200. The long-poll of an unknown request at the right tenant returns 401 or 404.
    assert _status(response) in ((200,) if path == CA_PATH else (401, 404)), response[:300]
    assert b"unknown_host" not in response


@pytest.mark.e2e
@pytest.mark.parametrize("host", [b"unknown.localhost", b"[::1]", b"[::1]:1", b"xn--bcher-kva.localhost",
                                  b"b\xc3\xbccher.localhost", b"", b"acme.localhost:port", b"acme..localhost",
                                  b"acme.localhost@evil.example"])
@pytest.mark.parametrize("path", [CA_PATH, "/api/v1/onboard/7c9e6679-7425-40de-944b-e07fc1f90ae7?wait=0"])
def test_live_unknown_host_returns_404(world, live_stack, host, path):
    response = _raw_request(live_stack.web_port, host, path)

    assert _status(response) == 404, response[:300]
    assert b'"code":"unknown_host"' in response.replace(b" ", b""), response[:300]


@pytest.mark.e2e
def test_live_missing_host_is_rejected_by_server(world, live_stack):
    # HTTP/1.1 requires Host (RFC 9112 section 3.2); uvicorn rejects the request before the application.
    response = _raw_request(live_stack.web_port, None)

    assert _status(response) == 400, response[:300]


@pytest.mark.e2e
def test_live_http10_without_host_reaches_provision_server(world, live_stack):
    # HTTP/1.0 has no Host header; Django then uses the server's own address, 127.0.0.1, a Provision Server host.
    response = _raw_request(live_stack.web_port, None, "/api/v1/onboard", version=b"HTTP/1.0")

    assert _status(response) == 404, response[:300]
    assert b'"code":"not_found"' in response.replace(b" ", b""), response[:300]
