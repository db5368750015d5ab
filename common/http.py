"""Helpers shared by the HTTP views."""

from __future__ import annotations

from django.conf import settings


def client_address(request) -> str:
    """Return the address of the client that sent ``request``.

    Behind ``ZTSP_TRUSTED_PROXY_COUNT`` reverse proxies, each proxy appends the
    address it received from to X-Forwarded-For, so the client is that many
    entries from the right. Entries further left are whatever the client wrote
    and are never trusted.
    """
    hops = settings.ZTSP_TRUSTED_PROXY_COUNT
    remote = request.META.get("REMOTE_ADDR", "")
    if hops <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < hops:
        return remote
    return forwarded[-hops]


def bearer_token(request) -> str | None:
    """Return the token of an ``Authorization: Bearer`` header, or None."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
