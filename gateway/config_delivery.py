"""Configuration over the tunnel: the catch-up ``config`` after a hello, and the EC's ``ack``.

An EC sends in its hello the config version it applied. When that differs from
its desired version, the gateway sends ``{"type": "config", "version",
"body"}`` at once, so an EC that was offline during a push catches up on
reconnect. The EC answers ``{"type": "ack", "version", "status", "detail"?}``
with ``status`` ``applied`` (or ``ok``) or ``failed``. The gateway records
it in the tenant's schema. Pushes to ECs already online go through
:mod:`gateway.push` from :mod:`policies.delivery`.
"""

from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from django_tenants.utils import schema_context

from common.db import released_connection
from gateway.records import TunnelPeer

logger = logging.getLogger(__name__)

ACK_STATUSES = ("applied", "ok", "failed")
# Config versions are stored in PostgreSQL integer columns.
MAX_CONFIG_VERSION = 2**31 - 1


@released_connection
def pending_config(peer: TunnelPeer, applied_version: int) -> dict | None:
    from policies.delivery import config_message_for

    with schema_context(peer.schema_name):
        return config_message_for(peer.edge_controller_id, applied_version)


@released_connection
def record_ack(peer: TunnelPeer, version: int, status: str, detail: str) -> None:
    from policies.delivery import record_config_ack

    with schema_context(peer.schema_name):
        record_config_ack(peer.edge_controller_id, peer.product_id, version=version, status=status, detail=detail)


def parse_ack(message: dict) -> tuple[int, str, str] | str:
    """Return (version, status, detail) of an ``ack`` message, or the reason it is invalid."""
    version = message.get("version")
    status = message.get("status")
    detail = message.get("detail") or ""
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_CONFIG_VERSION:
        return f"version {version!r} is not a positive integer of at most {MAX_CONFIG_VERSION}"
    if status not in ACK_STATUSES:
        return f"status {status!r} is not one of {', '.join(ACK_STATUSES)}"
    if not isinstance(detail, str):
        return "detail is not a string"
    if "\x00" in detail:
        # PostgreSQL text cannot store NUL.
        return "detail contains a NUL character"
    return version, status, detail


async def send_pending_config(send, peer: TunnelPeer, applied_version: int) -> None:
    """Send the EC its desired configuration with ``send(message)`` when ``applied_version`` is not it."""
    try:
        message = await sync_to_async(pending_config, thread_sensitive=False)(peer, applied_version)
    except Exception:
        # The tunnel stays up without it; the EC gets the document at its next hello or push.
        logger.exception("Reading the desired config of %s in %s failed", peer.product_id, peer.schema_name)
        return
    if message is not None:
        logger.info("Sending config version %d to %s in %s (it applied %d)", message["version"], peer.product_id,
                    peer.schema_name, applied_version)
        await send(message)


async def handle_ack(peer: TunnelPeer, message: dict) -> dict | None:
    """Record an ``ack`` message; return an error message for the EC when the ack is invalid."""
    parsed = parse_ack(message)
    if isinstance(parsed, str):
        logger.warning("Invalid ack from %s in %s: %s", peer.product_id, peer.schema_name, parsed)
        return {"type": "error", "code": "invalid_ack", "detail": f"Invalid ack: {parsed}."}
    version, status, detail = parsed
    try:
        await sync_to_async(record_ack, thread_sensitive=False)(peer, version, status, detail)
    except Exception:
        # No error goes to the EC, which did apply the config: its next hello reports the version again.
        logger.exception("Recording the ack of config version %d from %s in %s failed", version, peer.product_id,
                         peer.schema_name)
    return None
