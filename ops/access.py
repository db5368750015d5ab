"""Access control of the metrics endpoints: a bearer token from settings, or loopback clients when no token is set."""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class ScrapeRejected:
    status: int
    code: str
    detail: str


def _is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address((address or "").split("%")[0]).is_loopback
    except ValueError:
        return False


def check_scrape_access(authorization: str | None, client_address: str | None) -> ScrapeRejected | None:
    """Return why a metrics request is rejected, or None when it may read the metrics.

    With ``ZTSP_METRICS_TOKEN`` set, every client needs ``Authorization: Bearer
    <token>``, compared in constant time. Without it only a loopback client
    address is accepted, which protects nothing behind a reverse proxy on
    the same host: production sets the token.
    """
    token = settings.ZTSP_METRICS_TOKEN
    if not token:
        if _is_loopback(client_address):
            return None
        return ScrapeRejected(403, "metrics_forbidden",
                              "Metrics are served to loopback clients only while ZTSP_METRICS_TOKEN is unset; "
                              "set it and send 'Authorization: Bearer <token>'.")
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode()):
        return None
    return ScrapeRejected(401, "metrics_token_invalid",
                          "Missing or wrong metrics token: send 'Authorization: Bearer <ZTSP_METRICS_TOKEN>'.")
