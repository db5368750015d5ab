"""The onboard long-poll: ``GET /api/v1/onboard/<request_id>?wait=<seconds>``.

The core is one coroutine, :func:`poll_onboard_request`, used by two routes:
the ASGI fast path in ``config.asgi`` (production: no Django middleware, no
per-request thread) and the DRF view (WSGI, tests, the OpenAPI schema).

While it waits it occupies no thread and no database connection. Database
reads run briefly in a thread pool, and the wait itself is an
``asyncio.Event`` set by :class:`onboarding.events.OnboardEventHub`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django_tenants.utils import schema_context

from common.db import released_connection
from onboarding.events import OnboardEventHub, channel_for
from onboarding.models import OnboardRequest
from onboarding.services import poll_token_matches

WAITING_STATUSES = {OnboardRequest.Status.PENDING, OnboardRequest.Status.APPROVED}
_hubs: dict[int, OnboardEventHub] = {}


@dataclass
class PollResponse:
    status: int
    body: dict
    headers: dict


def _error(status: int, code: str, detail: str, **headers) -> PollResponse:
    return PollResponse(status, {"code": code, "detail": detail}, headers)


async def get_hub() -> OnboardEventHub:
    """Return the event hub of the running event loop, starting it on first use."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(id(loop))
    if hub is None:
        hub = _hubs[id(loop)] = OnboardEventHub(settings.REDIS_URL)
    await hub.start()
    return hub


def parse_wait(raw: str | None) -> float | None:
    """Return the requested wait in seconds, capped at ZTSP_LONG_POLL_MAX_WAIT; None when invalid."""
    if raw in (None, ""):
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        return None
    if wait != wait or wait < 0:  # NaN or negative
        return None
    return min(wait, float(settings.ZTSP_LONG_POLL_MAX_WAIT))


@released_connection
def read_request_state(schema_name: str, request_id: uuid.UUID) -> dict | None:
    """Return the API body of a request, or None when it does not exist (blocking: run in a thread)."""
    from pki.models import IssuedCertificate
    from pki.services import ca_chain_pem

    with schema_context(schema_name):
        row = OnboardRequest.objects.filter(pk=request_id).values("status", "product_id").first()
        if row is None:
            return None
        body = {"request_id": str(request_id), "product_id": row["product_id"], "status": row["status"]}
        if row["status"] == OnboardRequest.Status.SUPERSEDED:
            body["status"] = OnboardRequest.Status.REJECTED
            body["reason"] = "superseded"
        if row["status"] == OnboardRequest.Status.ISSUED:
            certificate = (
                IssuedCertificate.objects.select_related("issuing_ca").filter(onboard_request_id=request_id).first()
            )
            if certificate is None:
                body["status"] = OnboardRequest.Status.APPROVED
                return body
            body["certificate"] = certificate.certificate_pem
            body["certificate_serial"] = certificate.serial_hex
            body["ca_chain"] = ca_chain_pem(certificate.issuing_ca)
            body["tunnel"] = {"host": settings.ZTSP_TUNNEL_PUBLIC_HOST, "port": settings.ZTSP_TUNNEL_PUBLIC_PORT}
            if certificate.revoked_at is not None:
                body["certificate_revoked"] = True
        return body


async def poll_onboard_request(*, schema_name: str, request_id: str, poll_token: str | None, wait_raw: str | None,
                               run_sync: Callable[..., Awaitable] | None = None) -> PollResponse:
    """Return the state of an onboard request, waiting up to ``wait`` seconds for a change."""
    try:
        request_uuid = uuid.UUID(request_id)
    except ValueError:
        return _error(404, "onboard_request_not_found", f"Onboard request {request_id!r} not found.")
    # The poll token is bound to tenant and request, so it is checked without
    # touching the database, and another tenant's token never matches.
    if not poll_token_matches(request_uuid, poll_token, schema_name=schema_name):
        return _error(401, "invalid_poll_token",
                      "Missing or wrong poll token: send 'Authorization: Bearer <poll_token>' from the onboard "
                      "response.", **{"WWW-Authenticate": 'Bearer realm="onboard"'})
    wait = parse_wait(wait_raw)
    if wait is None:
        return _error(400, "invalid_wait", f"wait={wait_raw!r} is not a number of seconds >= 0.")

    read = run_sync or sync_to_async(read_request_state, thread_sensitive=False)
    hub = await get_hub() if wait > 0 else None
    channel = channel_for(schema_name, request_uuid)
    # Register before the first read, so a change between read and wait still wakes us.
    event = hub.register(channel) if hub else None
    try:
        body = await read(schema_name, request_uuid)
        if body is None:
            return _error(404, "onboard_request_not_found", f"Onboard request {request_id} not found.")
        if body["status"] in WAITING_STATUSES and event is not None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            # Approval wakes us while the certificate is still being signed, so
            # keep waiting until the request leaves the waiting states.
            while body["status"] in WAITING_STATUSES:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(event.wait(), timeout=remaining)
                except TimeoutError:
                    pass
                event.clear()
                body = await read(schema_name, request_uuid) or body
        return PollResponse(200, body, {})
    finally:
        if hub and event:
            hub.unregister(channel, event)
