"""The history of one EC, merged from the tenant's audit events and its own rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Q

from audit.models import AuditEvent
from onboarding.models import EdgeController


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    text: str
    actor: str = ""


def _describe(event: AuditEvent) -> tuple[str, str] | None:
    """Return (kind, text) for an audit event that belongs on an EC's timeline, or None to leave it out."""
    details = event.details or {}
    if event.action == "onboard_request.create":
        conflict = ""
        if details.get("key_change"):
            conflict = " with a different key than the EC had"
        elif details.get("conflict"):
            conflict = " again, with the key the EC already had"
        return "requested", f"Onboard requested{conflict} (request {event.object_id})"
    if event.action == "onboard_request.approve":
        tags = ", ".join(details.get("tags") or [])
        return "approved", f"Approved{f' with tags {tags}' if tags else ''}"
    if event.action == "onboard_request.reject":
        note = details.get("note")
        return "rejected", f"Rejected{f': {note}' if note else ''}"
    if event.action == "certificate.issue":
        return "issued", f"Certificate {event.object_id} issued"
    if event.action == "certificate.revoke":
        return "revoked", f"Certificate {event.object_id} revoked ({details.get('reason') or 'no reason'})"
    if event.action == "edge_controller.decommission":
        note = details.get("reason")
        return "decommissioned", f"Decommissioned{f': {note}' if note else ''}"
    return None


def _reported_lookup_time(facts) -> datetime | None:
    """Return the ZTP lookup time an EC sent in its onboard facts (``ztp_lookup_at``), if valid."""
    value = facts.get("ztp_lookup_at") if isinstance(facts, dict) else None
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def build_timeline(controller: EdgeController, serials: list[str], request_ids: list[str]) -> list[TimelineEntry]:
    """Return the EC's events, newest first.

    Certificate revocations carry no Product ID in their details, so they are
    matched by serial. Tunnel up and down are not audited: the EC row keeps
    only the latest of each, so earlier tunnel sessions do not show.
    """
    events = AuditEvent.objects.filter(tenant_schema=connection.schema_name).filter(
        Q(details__product_id=controller.product_id)
        | Q(object_type="certificate", object_id__in=serials)
        | Q(object_type="onboard_request", object_id__in=request_ids)
        | Q(object_type="edge_controller", object_id=controller.product_id)
    )
    entries = []
    for event in events.order_by("at", "id"):
        described = _describe(event)
        if described is None:
            continue
        kind, text = described
        entries.append(TimelineEntry(event.at, kind, text, event.actor))

    for onboard_request in controller.onboard_requests.all():
        looked_up = _reported_lookup_time(onboard_request.facts)
        if looked_up:
            entries.append(TimelineEntry(looked_up, "looked-up", "Looked up its Director (reported by the EC)",
                                         onboard_request.product_id))

    if controller.tunnel_connected_at:
        entries.append(TimelineEntry(controller.tunnel_connected_at, "tunnel-up", "Last tunnel up"))
    if controller.tunnel_disconnected_at:
        entries.append(TimelineEntry(controller.tunnel_disconnected_at, "tunnel-down", "Last tunnel down"))
    entries.sort(key=lambda entry: entry.at, reverse=True)
    return entries
