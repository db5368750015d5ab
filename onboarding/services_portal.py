"""Tenant admin operations behind the Director portal: bulk decisions, tags, revocation, decommissioning.

All functions run in the tenant's schema, like those of ``onboarding.services``.
Each takes the acting user as ``actor=``, runs in one transaction and writes
the audit record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit.services import Actor, record_event
from onboarding.events import publish_request_changed
from onboarding.models import EdgeController, OnboardRequest, Tag
from onboarding.services import TAG_MAX_CHARS, approve_onboard_request, reject_onboard_request, tag_name_problem
from pki.models import IssuedCertificate
from pki.services import revoke_certificate

logger = logging.getLogger(__name__)

REASON_MAX_CHARS = 500

# Reasons an admin may give; "superseded" is set only by issuing a newer certificate.
ADMIN_REVOCATION_REASONS = [
    IssuedCertificate.RevocationReason.KEY_COMPROMISE,
    IssuedCertificate.RevocationReason.CESSATION_OF_OPERATION,
]


class PortalError(ValueError):
    """An operation that cannot be done as requested, with ``field`` naming the form field at fault, if any."""

    def __init__(self, code: str, detail: str, *, field: str | None = None):
        self.code = code
        self.detail = detail
        self.field = field
        super().__init__(detail)


def _lock_all_pending(request_ids: Sequence) -> list[OnboardRequest]:
    """Lock the requests in ``request_ids`` and raise, naming every one that is missing or not pending."""
    if not request_ids:
        raise PortalError("nothing_selected", "No onboard request selected; tick at least one row.",
                          field="request_ids")
    locked = list(
        OnboardRequest.objects.select_for_update().filter(pk__in=request_ids).order_by("created_at")
    )
    found = {str(item.pk) for item in locked}
    missing = [str(pk) for pk in request_ids if str(pk) not in found]
    if missing:
        raise PortalError("onboard_request_not_found",
                          f"Onboard request {', '.join(missing)} not found in this tenant; reload the list.",
                          field="request_ids")
    not_pending = [f"{item.product_id} ({item.status})" for item in locked
                   if item.status != OnboardRequest.Status.PENDING]
    if not_pending:
        raise PortalError("not_pending",
                          f"Not pending any more: {', '.join(not_pending)}; reload the list and select again.",
                          field="request_ids")
    return locked


def approve_onboard_requests(request_ids: Sequence, *, actor: Actor, tags: Iterable[str] = (),
                             note: str = "") -> list[OnboardRequest]:
    """Approve several pending requests with the same ``tags``, all or none.

    Two requests of the same EC cannot both be approved, because approving
    one supersedes the other.
    """
    with transaction.atomic():
        locked = _lock_all_pending(request_ids)
        product_ids = [item.product_id for item in locked]
        duplicates = sorted({pid for pid in product_ids if product_ids.count(pid) > 1})
        if duplicates:
            raise PortalError("same_ec_twice",
                              f"More than one request selected for {', '.join(duplicates)}; "
                              "select only the request whose key you trust.", field="request_ids")
        approved = [approve_onboard_request(item, actor=actor, tags=tags, note=note) for item in locked]
    return approved


def reject_onboard_requests(request_ids: Sequence, *, actor: Actor, reason: str) -> list[OnboardRequest]:
    """Reject several pending requests with one ``reason``, all or none."""
    reason = (reason or "").strip()
    if not reason:
        raise PortalError("reason_required", "Enter a reason for the rejection, e.g. \"unknown device\".",
                          field="reason")
    if len(reason) > REASON_MAX_CHARS:
        raise PortalError("reason_too_long",
                          f"The reason has {len(reason)} characters; shorten it to {REASON_MAX_CHARS}.",
                          field="reason")
    with transaction.atomic():
        locked = _lock_all_pending(request_ids)
        rejected = [reject_onboard_request(item, actor=actor, note=reason) for item in locked]
    return rejected


def clean_tag_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise PortalError("tag_name_required", "Enter a tag name, e.g. \"berlin\".", field="name")
    if len(name) > TAG_MAX_CHARS:
        raise PortalError("tag_name_too_long",
                          f"Tag name {name[:20]!r}... has {len(name)} characters; use at most {TAG_MAX_CHARS}.",
                          field="name")
    if "," in name or ";" in name:
        raise PortalError("tag_name_invalid",
                          f"Tag name {name!r} contains a comma or semicolon, which separate tags; remove it.",
                          field="name")
    problem = tag_name_problem(name)
    if problem:
        raise PortalError("tag_name_invalid", problem, field="name")
    return name


def create_tag(name: str, *, actor: Actor) -> Tag:
    name = clean_tag_name(name)
    try:
        with transaction.atomic():
            tag = Tag.objects.create(name=name)
            record_event("tag.create", actor=actor, object_type="tag", object_id=str(tag.pk),
                         details={"name": name})
    except IntegrityError as error:
        raise PortalError("tag_exists", f"Tag {name!r} already exists; choose another name.",
                          field="name") from error
    logger.info("Tag %r created by %s", name, actor.name)
    return tag


def rename_tag(tag: Tag, new_name: str, *, actor: Actor) -> Tag:
    new_name = clean_tag_name(new_name)
    old_name = tag.name
    try:
        with transaction.atomic():
            locked = Tag.objects.select_for_update().get(pk=tag.pk)
            old_name = locked.name
            locked.name = new_name
            locked.save(update_fields=["name"])
            record_event("tag.rename", actor=actor, object_type="tag", object_id=str(locked.pk),
                         details={"old_name": old_name, "name": new_name})
    except IntegrityError as error:
        raise PortalError("tag_exists", f"Tag {new_name!r} already exists; choose another name.",
                          field="name") from error
    logger.info("Tag %r renamed to %r by %s", old_name, new_name, actor.name)
    return locked


def delete_tag(tag: Tag, *, actor: Actor) -> int:
    """Delete ``tag``, remove it from its ECs and return how many ECs had it.

    The ECs lose the auto policies that came with the tag: their desired
    configuration is recomputed and sent.
    """
    from policies.services import refresh_desired_configs

    with transaction.atomic():
        locked = Tag.objects.select_for_update().get(pk=tag.pk)
        controller_ids = list(locked.edge_controllers.values_list("pk", flat=True))
        controller_count = len(controller_ids)
        record_event("tag.delete", actor=actor, object_type="tag", object_id=str(locked.pk),
                     details={"name": locked.name, "edge_controllers": controller_count})
        locked.delete()
        refresh_desired_configs(controller_ids)
    logger.info("Tag %r deleted by %s (%d ECs had it)", tag.name, actor.name, controller_count)
    return controller_count


def _clean_revocation_reason(reason: str) -> str:
    if reason not in ADMIN_REVOCATION_REASONS:
        allowed = ", ".join(str(value) for value in ADMIN_REVOCATION_REASONS)
        raise PortalError("invalid_revocation_reason",
                          f"Revocation reason {reason!r} is not valid; choose one of: {allowed}.", field="reason")
    return reason


def revoke_active_certificate(controller: EdgeController, *, actor: Actor, reason: str) -> IssuedCertificate:
    """Revoke the EC's active certificate, after which the tunnel gateway closes its tunnel."""
    reason = _clean_revocation_reason(reason)
    with transaction.atomic():
        certificate = (
            IssuedCertificate.objects.select_for_update()
            .filter(edge_controller=controller, revoked_at__isnull=True).first()
        )
        if certificate is None:
            raise PortalError("no_active_certificate",
                              f"{controller.product_id} has no active certificate; nothing to revoke.")
        certificate = revoke_certificate(certificate, reason, actor=actor)
        record_event("edge_controller.revoke_certificate", actor=actor, object_type="edge_controller",
                     object_id=controller.product_id,
                     details={"product_id": controller.product_id, "serial": certificate.serial_hex,
                              "reason": reason})
    logger.info("Certificate %s of %s revoked by %s (%s)", certificate.serial_hex, controller.product_id,
                actor.name, reason)
    return certificate


def _unmap_at_provision_server(product_id: str, *, actor: Actor) -> None:
    """Unmap the EC's product from this tenant at the Provision Server, in the caller's transaction.

    Every Director here is a hosted tenant, so its registrations are found
    by the management URLs of its domains.
    """
    from msp.services.registrations import unmap_product_from_tenant
    from tenants.models import Domain
    from tenants.services import management_url_for

    domains = Domain.objects.filter(tenant__schema_name=connection.schema_name).values_list("domain", flat=True)
    unmap_product_from_tenant(product_id, [management_url_for(domain) for domain in domains], actor=actor,
                              reason=f"decommissioned at tenant {connection.schema_name}")


def decommission_edge_controller(controller: EdgeController, *, actor: Actor,
                                 reason: str = "") -> EdgeController:
    """Take an EC out of service: revoke its active certificate, reject its pending requests, mark it.

    The product is also unmapped from this tenant at the Provision Server,
    so the EC's lookups return 409 until its MSP maps it again. An onboard
    request that still reaches the tenant is recorded as pending again and
    needs a new approval.
    """
    reason = (reason or "").strip()[:REASON_MAX_CHARS]
    with transaction.atomic():
        locked = EdgeController.objects.select_for_update().get(pk=controller.pk)
        if locked.state == EdgeController.State.DECOMMISSIONED:
            raise PortalError("already_decommissioned", f"{locked.product_id} is already decommissioned.")

        revoked = []
        for certificate in IssuedCertificate.objects.select_for_update().filter(
            edge_controller=locked, revoked_at__isnull=True
        ):
            revoke_certificate(certificate, IssuedCertificate.RevocationReason.CESSATION_OF_OPERATION,
                               actor=actor)
            revoked.append(certificate.serial_hex)

        now = timezone.now()
        open_requests = list(
            OnboardRequest.objects.filter(
                edge_controller=locked,
                status__in=[OnboardRequest.Status.PENDING, OnboardRequest.Status.APPROVED],
            ).values_list("pk", flat=True)
        )
        OnboardRequest.objects.filter(pk__in=open_requests).update(
            status=OnboardRequest.Status.REJECTED, decided_at=now, decided_by=actor.name,
            decision_note="EC decommissioned",
        )
        locked.state = EdgeController.State.DECOMMISSIONED
        locked.save(update_fields=["state", "last_seen_at"])
        record_event("edge_controller.decommission", actor=actor, object_type="edge_controller",
                     object_id=locked.product_id,
                     details={"product_id": locked.product_id, "revoked": revoked, "reason": reason,
                              "rejected_requests": [str(pk) for pk in open_requests]})
        for pk in open_requests:
            publish_request_changed(pk)
        _unmap_at_provision_server(locked.product_id, actor=actor)
    logger.info("%s decommissioned by %s (revoked %s)", locked.product_id, actor.name, revoked or "nothing")
    return locked
