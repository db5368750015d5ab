"""Oversized and malformed bodies sent to the live uvicorn server, with and without Content-Length.

Under ASGI the body reaches Django through uvicorn, and a chunked body
through ``config.asgi.with_content_length``, so these paths differ from the
in-process test client's.
"""

from __future__ import annotations

import base64
import json
import socket

import pytest
from django.conf import settings

pytestmark = pytest.mark.e2e


def _send(port: int, host: str, path: str, body: bytes, headers: dict[str, str], *, chunked: bool) -> bytes:
    """Send one POST on a new connection and return the raw response."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        payload = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n"
                           for part in (body[i:i + 8192] for i in range(0, len(body), 8192))) + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        try:
            connection.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            # The server may send its 413 and close before the whole body is sent.
            pass
        chunks = []
        while True:
            try:
                chunk = connection.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def _status_and_json(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        decoded, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            decoded, rest = decoded + rest[:size], rest[size + 2:]
        body = decoded
    return status, json.loads(body)


def _oversized() -> bytes:
    return json.dumps({"product_id": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}).encode()


@pytest.mark.parametrize("chunked", [False, True], ids=["content_length", "chunked"])
@pytest.mark.parametrize(("target", "path", "content_type"), [
    ("tenant", "/api/v1/onboard", "application/json"),
    ("public", "/api/v1/msp/products/claim", "text/csv"),
    ("public", "/api/v1/ztp/lookup", "application/json"),
    ("tenant", "/.well-known/est/simpleenroll", "application/pkcs10"),
])
def test_live_oversized_body_returns_413(world, live_stack, chunked, target, path, content_type):
    persona = world.a
    if target == "tenant":
        host = persona.domain
        est_user = f"EC100:7c9e6679-7425-40de-944b-e07fc1f90ae7:{persona.tenant_access_key}"
        authorization = (f"Bearer {persona.tenant_access_key}" if path == "/api/v1/onboard"
                         else "Basic " + base64.b64encode(est_user.encode()).decode())
    else:
        host = "localhost"
        authorization = f"Bearer {persona.msp_token if 'msp' in path else world.provisioning_key}"

    response = _send(live_stack.web_port, host, path, _oversized(),
                     {"Content-Type": content_type, "Authorization": authorization}, chunked=chunked)

    status, body = _status_and_json(response)
    assert status == 413, response[:300]
    assert body["code"] == "body_too_large"


@pytest.mark.parametrize("chunked", [False, True], ids=["content_length", "chunked"])
def test_live_deeply_nested_json_returns_400(world, live_stack, chunked):
    response = _send(live_stack.web_port, world.a.domain, "/api/v1/onboard", b"[" * 5000 + b"]" * 5000,
                     {"Content-Type": "application/json", "Authorization": f"Bearer {world.a.tenant_access_key}"},
                     chunked=chunked)

    status, body = _status_and_json(response)
    assert status == 400, response[:300]
    assert body["code"] == "malformed_body"
