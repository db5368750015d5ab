"""Onboarding at the Director: onboard requests, approval, rejection, tunnel status.

All functions run in the tenant's schema (set by the tenant middleware, a
Celery task or ``schema_context``).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit.services import Actor, record_event
from common import tokens
from onboarding.events import publish_request_changed, publish_requests_changed
from onboarding.models import EdgeController, OnboardRequest, Tag
from pki import crypto
from provisioning.models import Product
from provisioning.product_ids import InvalidProductId, parse_product_id
from provisioning.services.device_proof import public_key_sha256, read_lookup_proof

logger = logging.getLogger(__name__)

POLL_TOKEN_PREFIX = "ztsp_poll"
MAX_FACTS_KEYS = 50
MAX_TAGS = 20
TAG_MAX_CHARS = 64


class OnboardRejected(ValueError):
    """An onboard request that cannot be accepted; ``code``/``detail`` go to the API."""

    def __init__(self, code: str, detail: str):
        self.code = code
        self.detail = detail
        super().__init__(detail)


class InvalidTransition(ValueError):
    def __init__(self, code: str, detail: str):
        self.code = code
        self.detail = detail
        super().__init__(detail)


@dataclass(frozen=True)
class SubmitResult:
    request: OnboardRequest
    created: bool
    poll_token: str


def poll_token_for(onboard_request: OnboardRequest) -> str:
    """Return the poll token of a request; it is derived, so a repeated request gets the same one."""
    return tokens.derive_token(
        "onboard-poll", f"{connection.schema_name}:{onboard_request.pk}", prefix=POLL_TOKEN_PREFIX
    )


def poll_token_matches(request_id, presented: str | None, *, schema_name: str) -> bool:
    if not presented:
        return False
    return tokens.token_matches(presented, "onboard-poll", f"{schema_name}:{request_id}", prefix=POLL_TOKEN_PREFIX)


def _clean_facts(facts) -> dict:
    if facts is None:
        return {}
    if not isinstance(facts, dict):
        raise OnboardRejected("invalid_facts", "facts must be a JSON object such as {\"firmware\": \"1.2.0\"}.")
    if len(facts) > MAX_FACTS_KEYS:
        raise OnboardRejected("invalid_facts", f"facts has {len(facts)} keys; send at most {MAX_FACTS_KEYS}.")
    return facts


def device_proof_status(product_id: str, lookup_proof, csr) -> str:
    """Return how a new onboard request is backed by the device credential, from the EC's lookup proof token.

    The product table is in the public schema, which every tenant's search
    path includes; the token is signed by this deployment's Provision Server.
    """
    proven = read_lookup_proof(lookup_proof, product_id)
    if proven is not None and proven.key_sha256 == public_key_sha256(csr.public_key()):
        return OnboardRequest.DeviceProof.VERIFIED
    has_credential = Product.objects.filter(product_id=product_id).exclude(credential="").exists()
    return OnboardRequest.DeviceProof.MISSING if has_credential else OnboardRequest.DeviceProof.NOT_REGISTERED


def submit_onboard_request(raw_product_id: str, csr_pem: str, facts, *, source_address: str | None,
                           channel: str = OnboardRequest.Channel.ONBOARD_API, lookup_proof=None) -> SubmitResult:
    """Record an onboard request from an EC, or return the existing one for the same CSR.

    A new CSR for an EC that is already pending or onboarded is recorded with
    ``conflict`` set, for the admin to decide. Until approved, it changes
    nothing about the EC. ``lookup_proof`` is the token of a lookup that
    proved the device credential; its absence is flagged on a product that
    has one (``device_proof``). Raises :class:`OnboardRejected` for a bad Product ID, facts or CSR,
    with nothing written.
    """
    try:
        product_id = str(parse_product_id(raw_product_id))
    except InvalidProductId as error:
        raise OnboardRejected("invalid_product_id", f"{error}; send the Product ID from the device's eMMC.") from error
    facts = _clean_facts(facts)
    try:
        csr = crypto.validate_csr(csr_pem, crypto.common_name_for(product_id))
    except crypto.CSRError as error:
        raise OnboardRejected(error.code, error.detail) from error
    fingerprint = crypto.csr_fingerprint(csr)

    existing = OnboardRequest.objects.filter(product_id=product_id, csr_fingerprint=fingerprint).first()
    if existing is not None:
        return SubmitResult(existing, False, poll_token_for(existing))

    device_proof = device_proof_status(product_id, lookup_proof, csr)
    try:
        with transaction.atomic():
            controller, _ = EdgeController.objects.select_for_update().get_or_create(product_id=product_id)
            # A decommissioned EC that requests onboarding again is flagged too, because an admin retired it.
            returning = controller.state in (EdgeController.State.ONBOARDED, EdgeController.State.DECOMMISSIONED)
            conflict = returning or OnboardRequest.objects.filter(
                edge_controller=controller,
                status__in=[OnboardRequest.Status.PENDING, OnboardRequest.Status.APPROVED],
            ).exists()
            key_change = _key_differs_from_last_certificate(controller, csr)
            if not conflict:
                # A conflicting request changes nothing about the EC until approved.
                controller.facts = facts or controller.facts
                controller.last_source_address = source_address
                controller.save()
            onboard_request = OnboardRequest.objects.create(
                edge_controller=controller,
                product_id=product_id,
                # Re-encoded, so text that RFC 7468 allows around the PEM block is not stored.
                csr_pem=csr.public_bytes(serialization.Encoding.PEM).decode(),
                csr_fingerprint=fingerprint,
                facts=facts,
                source_address=source_address,
                conflict=conflict,
                key_change=key_change,
                channel=channel,
                device_proof=device_proof,
            )
            record_event(
                "onboard_request.create", actor=Actor.for_device(product_id, source_address),
                object_type="onboard_request", object_id=str(onboard_request.pk),
                details={"product_id": product_id, "conflict": conflict, "key_change": key_change,
                         "device_proof": device_proof},
            )
    except IntegrityError:
        # A concurrent identical request won the unique constraint: return it.
        existing = OnboardRequest.objects.get(product_id=product_id, csr_fingerprint=fingerprint)
        return SubmitResult(existing, False, poll_token_for(existing))

    if device_proof == OnboardRequest.DeviceProof.MISSING:
        logger.warning("Onboard request %s for %s is not backed by the product's device credential",
                       onboard_request.pk, product_id)
    if conflict:
        logger.warning("Onboard request %s for %s conflicts with an existing request or certificate",
                       onboard_request.pk, product_id)
    else:
        logger.info("Onboard request %s for %s is pending", onboard_request.pk, product_id)
    return SubmitResult(onboard_request, True, poll_token_for(onboard_request))


def _key_differs_from_last_certificate(controller: EdgeController, csr) -> bool:
    """Return whether the EC was issued a certificate before for a key other than the CSR's."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from pki.models import IssuedCertificate

    last_pem = (
        IssuedCertificate.objects.filter(edge_controller=controller).order_by("-issued_at")
        .values_list("certificate_pem", flat=True).first()
    )
    if last_pem is None:
        return False
    spki = Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    last_key = x509.load_pem_x509_certificate(last_pem.encode()).public_key().public_bytes(*spki)
    return last_key != csr.public_key().public_bytes(*spki)


# Tag names: letters, digits, spaces and . _ : / - ; compared ignoring case.
TAG_NAME_RE = re.compile(r"[\w][\w .:/-]*")


def tag_name_problem(name: str) -> str | None:
    """Return why ``name`` is not a valid tag name, or None when it is."""
    if len(name) > TAG_MAX_CHARS:
        return f"Tag {name[:20]!r}... is longer than {TAG_MAX_CHARS} characters."
    if not TAG_NAME_RE.fullmatch(name):
        return (f"Tag {name!r} may contain only letters, digits, spaces and . _ : / -, "
                "and must start with a letter or digit.")
    return None


def tag_named(name: str) -> Tag:
    """Return the tag called ``name`` in any letter case, creating it when none exists."""
    return Tag.objects.filter(name__iexact=name).first() or Tag.objects.create(name=name)


def _clean_tags(tags: Iterable[str]) -> list[str]:
    names = []
    for tag in tags:
        name = str(tag).strip()
        if not name:
            continue
        problem = tag_name_problem(name)
        if problem:
            raise InvalidTransition("invalid_tag", problem)
        if name.lower() not in (existing.lower() for existing in names):
            names.append(name)
    if len(names) > MAX_TAGS:
        raise InvalidTransition("invalid_tag", f"{len(names)} tags given; use at most {MAX_TAGS}.")
    return names


def _lock_pending(onboard_request: OnboardRequest) -> OnboardRequest:
    locked = OnboardRequest.objects.select_for_update().select_related("edge_controller").get(pk=onboard_request.pk)
    if locked.status != OnboardRequest.Status.PENDING:
        raise InvalidTransition(
            "not_pending",
            f"Onboard request {locked.pk} for {locked.product_id} is {locked.status}, not pending; reload the list.",
        )
    return locked


def approve_onboard_request(onboard_request: OnboardRequest, *, actor: Actor, tags: Iterable[str] = (),
                            note: str = "") -> OnboardRequest:
    """Approve a pending request with ``tags``; the certificate is issued by a Celery task after commit.

    Other pending requests of the same EC are marked superseded.
    """
    from onboarding.tasks import queue_issuance

    tag_names = _clean_tags(tags)
    with transaction.atomic():
        locked = _lock_pending(onboard_request)
        now = timezone.now()
        locked.status = OnboardRequest.Status.APPROVED
        locked.decided_at = now
        locked.decided_by = actor.name
        locked.decision_note = note[:500]
        locked.save(update_fields=["status", "decided_at", "decided_by", "decision_note"])

        # An earlier approval whose certificate is not issued yet is superseded
        # too: its task would otherwise issue the older key's certificate last.
        superseded = list(
            OnboardRequest.objects.filter(
                edge_controller=locked.edge_controller,
                status__in=[OnboardRequest.Status.PENDING, OnboardRequest.Status.APPROVED],
            )
            .exclude(pk=locked.pk)
            .values_list("pk", flat=True)
        )
        OnboardRequest.objects.filter(pk__in=superseded).update(
            status=OnboardRequest.Status.SUPERSEDED, decided_at=now, decided_by=actor.name
        )
        controller = locked.edge_controller
        controller.facts = locked.facts or controller.facts
        controller.last_source_address = locked.source_address
        controller.save(update_fields=["facts", "last_source_address", "last_seen_at"])
        tag_objects = [tag_named(name) for name in tag_names]
        controller.tags.add(*tag_objects)

        record_event("onboard_request.approve", actor=actor, object_type="onboard_request",
                     object_id=str(locked.pk),
                     details={"product_id": locked.product_id, "tags": tag_names,
                              "superseded": [str(pk) for pk in superseded]})
        publish_request_changed(locked.pk)
        for pk in superseded:
            publish_request_changed(pk)
    # Queued after this function's own savepoint, so that the requests approved
    # in one transaction of the caller share their issuance tasks.
    queue_issuance(locked.pk)
    logger.info("Onboard request %s for %s approved by %s", locked.pk, locked.product_id, actor.name)
    return locked


def reject_onboard_request(onboard_request: OnboardRequest, *, actor: Actor, note: str = "") -> OnboardRequest:
    with transaction.atomic():
        locked = _lock_pending(onboard_request)
        locked.status = OnboardRequest.Status.REJECTED
        locked.decided_at = timezone.now()
        locked.decided_by = actor.name
        locked.decision_note = note[:500]
        locked.save(update_fields=["status", "decided_at", "decided_by", "decision_note"])
        controller = locked.edge_controller
        if controller.state == EdgeController.State.PENDING:
            controller.state = EdgeController.State.REJECTED
            controller.save(update_fields=["state", "last_seen_at"])
        record_event("onboard_request.reject", actor=actor, object_type="onboard_request",
                     object_id=str(locked.pk), details={"product_id": locked.product_id, "note": note[:500]})
        publish_request_changed(locked.pk)
    logger.info("Onboard request %s for %s rejected by %s", locked.pk, locked.product_id, actor.name)
    return locked


def stalled_approval_ids(older_than: timedelta) -> list[str]:
    """Return the ids of requests approved more than ``older_than`` ago and still not issued, oldest first."""
    decided_before = timezone.now() - older_than
    return [
        str(pk) for pk in OnboardRequest.objects.filter(
            status=OnboardRequest.Status.APPROVED, decided_at__lt=decided_before,
        ).order_by("decided_at").values_list("pk", flat=True)
    ]


def complete_issuance(request_id) -> OnboardRequest | None:
    """Issue the certificate of an approved request; a no-op when already done or gone.

    Called by the Celery task. The row lock and the one-certificate-per-request
    constraint make a redelivered task harmless.
    """
    from pki.services import issue_certificate
    from policies.services import refresh_desired_configs
    from tenants.models import Tenant

    # A Celery task runs with its Tenant set on the connection, but schema_context sets a stand-in without domains.
    tenant = connection.tenant if isinstance(connection.tenant, Tenant) else Tenant.objects.get(
        schema_name=connection.schema_name)
    with transaction.atomic():
        onboard_request = (
            OnboardRequest.objects.select_for_update().select_related("edge_controller").filter(pk=request_id).first()
        )
        if onboard_request is None:
            logger.warning("Onboard request %s no longer exists; nothing to issue", request_id)
            return None
        if onboard_request.status != OnboardRequest.Status.APPROVED:
            logger.info("Onboard request %s is %s; nothing to issue", request_id, onboard_request.status)
            return onboard_request
        issue_certificate(onboard_request, tenant=tenant)
        onboard_request.status = OnboardRequest.Status.ISSUED
        onboard_request.save(update_fields=["status"])
        controller = onboard_request.edge_controller
        controller.state = EdgeController.State.ONBOARDED
        controller.save(update_fields=["state", "last_seen_at"])
        refresh_desired_configs([controller.pk])
        publish_request_changed(onboard_request.pk)
    return onboard_request


def complete_issuances(request_ids) -> dict[str, int]:
    """Issue the certificates of many approved requests in one transaction; return counts by resulting status.

    Requests that are gone count as ``not_found``; requests that are not
    approved (issued already, rejected, superseded) are left as they are and
    counted by their status. Raises when any issuance fails, with nothing
    written; the caller then issues the requests one by one.
    """
    from pki.services import issue_certificates
    from policies.services import refresh_desired_configs
    from tenants.models import Tenant

    tenant = connection.tenant if isinstance(connection.tenant, Tenant) else Tenant.objects.get(
        schema_name=connection.schema_name)
    wanted = {str(request_id) for request_id in request_ids}
    with transaction.atomic():
        # Locked in primary key order, so two batches that share requests cannot deadlock.
        rows = list(OnboardRequest.objects.select_for_update().filter(pk__in=wanted).order_by("pk"))
        approved = [row for row in rows if row.status == OnboardRequest.Status.APPROVED]
        if approved:
            issue_certificates(approved, tenant=tenant)
            approved_ids = [row.pk for row in approved]
            OnboardRequest.objects.filter(pk__in=approved_ids).update(status=OnboardRequest.Status.ISSUED)
            EdgeController.objects.filter(pk__in={row.edge_controller_id for row in approved}).update(
                state=EdgeController.State.ONBOARDED, last_seen_at=timezone.now())
            refresh_desired_configs({row.edge_controller_id for row in approved})
            publish_requests_changed(approved_ids)
            for row in approved:
                row.status = OnboardRequest.Status.ISSUED
    statuses = Counter(row.status for row in rows)
    if len(rows) < len(wanted):
        statuses["not_found"] = len(wanted) - len(rows)
    return dict(statuses)
