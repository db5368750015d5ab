"""Writing the audit log.

Every service function that changes state takes an :class:`Actor` and calls
:func:`record_event` inside its own transaction, so the event exists exactly
when the change does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection

from audit.models import AuditEvent
from common.db import copy_instances


@dataclass(frozen=True)
class Actor:
    """The performer of an operation and its source address."""

    actor_type: str
    name: str
    source_address: str | None = None
    user_id: int | None = None
    msp_id: int | None = None

    @classmethod
    def for_user(cls, user, source_address: str | None = None, *, msp_id: int | None = None) -> Actor:
        return cls(AuditEvent.ActorType.USER, user.get_username(), source_address, user.pk, msp_id)

    @classmethod
    def for_device(cls, product_id: str, source_address: str | None = None) -> Actor:
        return cls(AuditEvent.ActorType.DEVICE, product_id, source_address)

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(AuditEvent.ActorType.SYSTEM, name)


def _current_tenant_schema() -> str:
    schema = getattr(connection, "schema_name", "public")
    return "" if schema == "public" else schema


def record_event(
    action: str,
    *,
    actor: Actor,
    object_type: str,
    object_id: str,
    msp_id: int | None = None,
    details: dict | None = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        action=action,
        actor_type=actor.actor_type,
        actor=actor.name,
        source_address=actor.source_address or None,
        object_type=object_type,
        object_id=str(object_id),
        tenant_schema=_current_tenant_schema(),
        msp_id=msp_id if msp_id is not None else actor.msp_id,
        details=details or {},
    )


def record_events(
    action: str,
    *,
    actor: Actor,
    object_type: str,
    object_ids: Iterable[str],
    msp_id: int | None = None,
    details: dict | None = None,
) -> int:
    """Record one event per object, all with the same ``details``, with one COPY; return how many."""
    return record_events_each(action, actor=actor, object_type=object_type, msp_id=msp_id,
                              items=((object_id, details or {}) for object_id in object_ids))


def record_events_each(action: str, *, actor: Actor, object_type: str, items: Iterable[tuple[str, dict]],
                       msp_id: int | None = None) -> int:
    """Record one event per (object id, details) pair with one COPY; return how many."""
    schema = _current_tenant_schema()
    rows = [
        AuditEvent(
            action=action,
            actor_type=actor.actor_type,
            actor=actor.name,
            source_address=actor.source_address or None,
            object_type=object_type,
            object_id=str(object_id),
            tenant_schema=schema,
            msp_id=msp_id if msp_id is not None else actor.msp_id,
            details=details,
        )
        for object_id, details in items
    ]
    return copy_instances(AuditEvent, rows)
