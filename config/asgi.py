"""ASGI entry point: Django, plus a fast path for the onboard long-poll.

Django's ASGI handler gives every request a thread for its synchronous
middleware and signals, which would mean one parked thread per waiting EC.
So the long-poll route (``GET /api/v1/onboard/<uuid>``) is served here,
before Django, by :func:`onboarding.longpoll.poll_onboard_request`. Every
other request goes to Django unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from urllib.parse import parse_qs

import django
from asgiref.sync import sync_to_async

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.db import connection  # noqa: E402
from django.http.request import split_domain_port, validate_host  # noqa: E402

from common.db import released_connection  # noqa: E402
from common.log_context import set_log_schema  # noqa: E402
from common.log_filters import install_url_secret_filters  # noqa: E402
from config.api import (  # noqa: E402
    DEPENDENCY_ERRORS,
    DEPENDENCY_RETRY_HEADERS,
    DEPENDENCY_UNAVAILABLE_DETAIL,
    log_dependency_error,
)
from onboarding.longpoll import poll_onboard_request  # noqa: E402
from ops.metrics import HTTP_REQUESTS  # noqa: E402
from tenants.models import Domain  # noqa: E402

logger = logging.getLogger(__name__)
# uvicorn (web and EST HTTPS servers alike) logs each request path, which may carry a password-reset token.
install_url_secret_filters()

django_application = get_asgi_application()

LONG_POLL_PATH = re.compile(r"^/api/v1/onboard/([0-9A-Fa-f-]{36})/?$")
# Seconds a host-to-schema lookup result is cached, so a new tenant domain is served after at most this.
HOST_CACHE_SECONDS = 30
_host_cache: dict[str, tuple[float, str | None]] = {}


@released_connection
def _lookup_schema(hostname: str) -> str | None:
    connection.set_schema_to_public()
    domain = Domain.objects.select_related("tenant").filter(domain=hostname).first()
    return domain.tenant.schema_name if domain else None


async def schema_for_host(host_header: str) -> str | None:
    hostname, _port = split_domain_port(host_header)
    if not hostname or not validate_host(hostname, settings.ALLOWED_HOSTS):
        return None
    cached = _host_cache.get(hostname)
    now = time.monotonic()
    if cached and cached[0] > now:
        return cached[1]
    schema = await sync_to_async(_lookup_schema, thread_sensitive=False)(hostname)
    _host_cache[hostname] = (now + HOST_CACHE_SECONDS, schema)
    return schema


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


async def _send_json(send, status: int, body: dict, headers: dict) -> None:
    payload = json.dumps(body).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                   # The same headers Django's SecurityMiddleware adds to other responses.
                   (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]
    raw_headers += [(name.lower().encode(), str(value).encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


async def long_poll(scope, receive, send, request_id: str) -> None:
    schema = await schema_for_host(_header(scope, b"host") or "")
    if schema is None or schema == "public" or not settings.DIRECTOR_ROLE:
        host = (_header(scope, b"host") or "")[:255]
        await _send_json(send, 404, {"code": "unknown_host",
                                     "detail": f"No Director tenant is served at host {host!r}."}, {})
        return
    set_log_schema(schema)
    authorization = _header(scope, b"authorization") or ""
    scheme, _, token = authorization.partition(" ")
    wait = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("wait", [None])[0]
    result = await poll_onboard_request(
        schema_name=schema, request_id=request_id,
        poll_token=token.strip() if scheme.lower() == "bearer" else None, wait_raw=wait,
    )
    await _send_json(send, result.status, result.body, result.headers)


async def with_content_length(scope, receive, send):
    """Buffer a chunked request body so Django receives a Content-Length.

    Django's ASGI request reads only as many bytes as Content-Length gives, so
    a chunked body would arrive empty. The body is bounded by the same limit
    as any other request body; a larger one gets 413 at once.
    """
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if len(body) > limit:
            await _send_json(send, 413, {"code": "body_too_large",
                                         "detail": f"The request body exceeds the limit of {limit} bytes; "
                                                   "send a smaller body."}, {})
            return None
        if not message.get("more_body"):
            break
    headers = [(key, value) for key, value in scope["headers"] if key != b"transfer-encoding"]
    headers.append((b"content-length", str(len(body)).encode()))
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}
        return await receive()

    return {**scope, "headers": headers}, replay


def counted(send):
    """Wrap ``send`` so the response of a request that bypasses Django still counts in the HTTP metrics."""

    async def send_and_count(message):
        if message["type"] == "http.response.start":
            HTTP_REQUESTS.labels("GET", str(message["status"])).inc()
        await send(message)

    return send_and_count


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["method"] == "GET":
        match = LONG_POLL_PATH.match(scope["path"])
        if match:
            send = counted(send)
            try:
                await long_poll(scope, receive, send, match.group(1))
            except DEPENDENCY_ERRORS as error:
                log_dependency_error(error, scope["path"])
                await _send_json(send, 503, {"code": "dependency_unavailable", "detail": DEPENDENCY_UNAVAILABLE_DETAIL},
                                 DEPENDENCY_RETRY_HEADERS)
            except Exception:
                logger.exception("Long-poll of onboard request %s failed", match.group(1))
                await _send_json(send, 500, {"code": "server_error",
                                             "detail": "The server failed to answer the poll; retry."}, {})
            return
    if scope["type"] == "http" and _header(scope, b"transfer-encoding") and not _header(scope, b"content-length"):
        buffered = await with_content_length(scope, receive, send)
        if buffered is None:
            return
        scope, receive = buffered
    await django_application(scope, receive, send)
