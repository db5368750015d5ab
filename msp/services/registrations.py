"""Tenant registrations: the URL and access key of each Director tenant of an MSP."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction

from audit.services import Actor, record_event
from common import tokens
from msp.management_urls import normalize_management_url
from msp.models import MSP, TenantRegistration

logger = logging.getLogger(__name__)

MIN_ACCESS_KEY_CHARS = 20


class RegistrationRejected(ValueError):
    def __init__(self, code: str, detail: str, *, field: str | None = None):
        self.code = code
        self.detail = detail
        self.field = field
        super().__init__(detail)


def _check_access_key(access_key: str) -> str:
    key = (access_key or "").strip()
    if len(key) < MIN_ACCESS_KEY_CHARS:
        raise RegistrationRejected(
            "weak_access_key",
            f"The tenant access key must be at least {MIN_ACCESS_KEY_CHARS} characters; "
            "copy the key the Director showed when the tenant was created.",
            field="access_key",
        )
    return key


def register_tenant(msp: MSP, *, name: str, management_url: str, access_key: str, actor: Actor
                    ) -> TenantRegistration:
    """Register a Director tenant of ``msp`` by its management URL and access key."""
    url = normalize_management_url(management_url)
    key = _check_access_key(access_key)
    try:
        with transaction.atomic():
            registration = TenantRegistration.objects.create(
                msp=msp, name=name.strip(), management_url=url, access_key_encrypted=tokens.encrypt(key.encode())
            )
            record_event("tenant_registration.create", actor=actor, object_type="tenant_registration",
                         object_id=str(registration.pk), msp_id=msp.pk, details={"management_url": url})
    except IntegrityError as error:
        raise RegistrationRejected(
            "duplicate_registration",
            f"A tenant with URL {url} or name {name!r} is already registered; update that registration instead.",
        ) from error
    logger.info("MSP %s registered tenant %s", msp.slug, url)
    return registration


@transaction.atomic
def update_tenant_access_key(registration: TenantRegistration, access_key: str, *, actor: Actor
                             ) -> TenantRegistration:
    """Replace the stored access key of a registration (after a key change at the Director)."""
    key = _check_access_key(access_key)
    registration.access_key_encrypted = tokens.encrypt(key.encode())
    registration.save(update_fields=["access_key_encrypted", "updated_at"])
    record_event("tenant_registration.update_key", actor=actor, object_type="tenant_registration",
                 object_id=str(registration.pk), msp_id=registration.msp_id)
    return registration
