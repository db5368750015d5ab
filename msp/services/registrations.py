"""Tenant registrations: the URL and access key of each Director tenant of an MSP."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django_tenants.utils import get_public_schema_name

from audit.services import Actor, record_event
from common import tokens
from msp.management_urls import normalize_management_url
from msp.models import MSP, TenantRegistration
from provisioning.models import Product
from tenants.models import Domain, Tenant
from tenants.services import management_url_for, rotate_tenant_access_key

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
    _check_hosted_owner(msp, url, name)
    try:
        with transaction.atomic():
            registration = TenantRegistration.objects.create(
                msp=msp, name=name.strip(), management_url=url, access_key_encrypted=tokens.encrypt(key.encode())
            )
            record_event("tenant_registration.create", actor=actor, object_type="tenant_registration",
                         object_id=str(registration.pk), msp_id=msp.pk, details={"management_url": url})
    except IntegrityError as error:
        raise _duplicate(msp, url, name) from error
    logger.info("MSP %s registered tenant %s", msp.slug, url)
    return registration


def _check_hosted_owner(msp: MSP, url: str, name: str, *, exclude_pk: int | None = None) -> None:
    """Reject the URL of a tenant hosted here for another MSP, with the error of a URL that another MSP registered.

    Otherwise an MSP could take another MSP's hosted tenant URL before its
    owner registers it: the owner could then not register its own tenant, and
    the taker's products would be sent to that tenant.
    """
    tenant = hosted_tenant_at(url)
    if tenant is not None and tenant.owner_msp_id is not None and tenant.owner_msp_id != msp.pk:
        raise _duplicate(msp, url, name, exclude_pk=exclude_pk)


def _duplicate(msp: MSP, url: str, name: str, *, exclude_pk: int | None = None) -> RegistrationRejected:
    """Describe a uniqueness conflict without revealing another MSP's registration."""
    own = TenantRegistration.objects.filter(msp=msp).exclude(pk=exclude_pk)
    if own.filter(management_url=url).exists() or own.filter(name=name).exists():
        return RegistrationRejected(
            "duplicate_registration",
            f"You already have a tenant registered with URL {url} or name {name!r}; update that registration.",
        )
    return RegistrationRejected(
        "duplicate_registration",
        f"The URL {url} cannot be registered; if this Director tenant is yours, contact the vendor.",
    )


@transaction.atomic
def update_tenant_registration(registration: TenantRegistration, *, actor: Actor, name: str | None = None,
                               management_url: str | None = None, access_key: str | None = None
                               ) -> TenantRegistration:
    """Change a registration's name, management URL and/or access key.

    A new URL takes effect at the next lookup of every product mapped to the
    registration (a Director moved to another host name).
    """
    changes: dict[str, str] = {}
    if name is not None and name.strip() != registration.name:
        changes["name"] = name.strip()
    if management_url is not None:
        url = normalize_management_url(management_url)
        if url != registration.management_url:
            _check_hosted_owner(registration.msp, url, name or registration.name, exclude_pk=registration.pk)
            changes["management_url"] = url
    if access_key is not None:
        changes["access_key_encrypted"] = tokens.encrypt(_check_access_key(access_key).encode())
    if not changes:
        return registration
    for field_name, value in changes.items():
        setattr(registration, field_name, value)
    try:
        with transaction.atomic():
            registration.save(update_fields=[*changes, "updated_at"])
    except IntegrityError as error:
        raise _duplicate(registration.msp, changes.get("management_url", registration.management_url),
                         changes.get("name", registration.name), exclude_pk=registration.pk) from error
    shown = {key: value for key, value in changes.items() if key != "access_key_encrypted"}
    if "access_key_encrypted" in changes:
        shown["access_key"] = "replaced"
    record_event("tenant_registration.update", actor=actor, object_type="tenant_registration",
                 object_id=str(registration.pk), msp_id=registration.msp_id, details=shown)
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


@dataclass(frozen=True)
class RotatedKey:
    """The result of a rotation: the new ``access_key`` is shown once and never stored in clear."""

    registration: TenantRegistration
    tenant: Tenant
    access_key: str
    key_id: str
    previous_key_valid_until: datetime | None


def hosted_tenant_of(registration: TenantRegistration) -> Tenant | None:
    """Return the tenant that this deployment serves at the registration's management URL, or None."""
    return hosted_tenant_at(registration.management_url)


def hosted_tenant_at(management_url: str) -> Tenant | None:
    """Return the tenant that this deployment serves at the normalized ``management_url``, or None.

    The URL must match exactly what this deployment would give the tenant's
    domain (scheme and port included): a Director elsewhere may use the same
    host name behind another port.
    """
    if not settings.DIRECTOR_ROLE:
        return None
    host = urlsplit(management_url).hostname or ""
    domain = Domain.objects.select_related("tenant").filter(domain=host).first()
    if domain is None or domain.tenant.schema_name == get_public_schema_name():
        return None
    if management_url_for(domain.domain) != management_url:
        return None
    return domain.tenant


@transaction.atomic
def rotate_registration_access_key(registration: TenantRegistration, *, actor: Actor,
                                   grace_seconds: int | None = None) -> RotatedKey:
    """Rotate the access key of a tenant hosted here and store the new key in its registration.

    Only the tenant's owner MSP can do this. A tenant of a Director hosted
    elsewhere is rotated at that Director, and its new key is then stored
    with :func:`update_tenant_access_key`. The old key stays valid for
    ``grace_seconds`` (default ``ZTSP_TENANT_KEY_GRACE_SECONDS``).
    """
    registration = TenantRegistration.objects.select_for_update().get(pk=registration.pk)
    url = registration.management_url
    tenant = hosted_tenant_of(registration)
    if tenant is None:
        raise RegistrationRejected(
            "not_hosted_here",
            f"The tenant at {url} is not hosted by this deployment, so its key cannot be rotated here. "
            f"Rotate the key at its Director, then send the new key with "
            f"PATCH /api/v1/msp/tenant-registrations/{registration.pk}.",
        )
    if tenant.owner_msp_id != registration.msp_id:
        raise RegistrationRejected(
            "tenant_not_owned",
            f"The tenant at {url} is hosted by this deployment but not owned by your MSP, so you cannot rotate "
            f"its key. Ask the vendor to rotate it, then send the new key with "
            f"PATCH /api/v1/msp/tenant-registrations/{registration.pk}.",
        )

    access_key = rotate_tenant_access_key(tenant, actor=actor, grace_seconds=grace_seconds)
    registration.access_key_encrypted = tokens.encrypt(access_key.encode())
    registration.save(update_fields=["access_key_encrypted", "updated_at"])

    valid_until = tenant.previous_key_valid_until
    record_event("tenant_registration.rotate_key", actor=actor, object_type="tenant_registration",
                 object_id=str(registration.pk), msp_id=registration.msp_id,
                 details={"schema_name": tenant.schema_name, "key_id": tenant.access_key_id,
                          "previous_key_valid_until": valid_until.isoformat() if valid_until else None})
    logger.info("Rotated the access key of tenant registration %s (%s) to key id %s",
                registration.pk, url, tenant.access_key_id)
    return RotatedKey(registration, tenant, access_key, tenant.access_key_id, valid_until)


@transaction.atomic
def delete_tenant_registration(registration: TenantRegistration, *, actor: Actor) -> None:
    """Delete a registration that no product is mapped to.

    The tenant itself is untouched: a hosted tenant keeps its schema and key.
    """
    # Mapping takes a FOR KEY SHARE lock on the registration first, so this
    # row lock waits for any map to it that is still running. The count below
    # then includes every product mapped by then.
    locked = TenantRegistration.objects.select_for_update().filter(pk=registration.pk).first()
    if locked is None:
        raise TenantRegistration.DoesNotExist(f"tenant registration {registration.pk} was deleted meanwhile")
    mapped = Product.objects.filter(tenant_registration=locked).count()
    if mapped:
        products_are = "1 product is" if mapped == 1 else f"{mapped} products are"
        raise RegistrationRejected(
            "registration_in_use",
            f"{products_are} mapped to tenant registration {locked.pk} ({locked.management_url}); "
            "unmap them with POST /api/v1/msp/products/unmap or map them to another registration first.",
        )

    details = {"name": locked.name, "management_url": locked.management_url}
    record_event("tenant_registration.delete", actor=actor, object_type="tenant_registration",
                 object_id=str(locked.pk), msp_id=locked.msp_id, details=details)
    locked.delete()
    logger.info("Deleted tenant registration %s (%s)", registration.pk, details["management_url"])


def registrations_at(urls: list[str]) -> list[TenantRegistration]:
    """Lock and return the registrations of any MSP whose management URL is one of ``urls``."""
    return list(TenantRegistration.objects.select_for_update().filter(management_url__in=urls).order_by("pk"))


def clear_tenant_registrations(registrations: list[TenantRegistration], *, actor: Actor, reason: str) -> int:
    """Unmap every product mapped to ``registrations``, then delete them; return the products unmapped.

    For a Director tenant that no longer exists: its products' ZTP lookups
    then return 409 ``not_mapped`` rather than a URL that nothing serves. The
    caller holds the row locks from :func:`registrations_at`, so no map to
    these registrations runs meanwhile. Must run inside a transaction.
    """
    from audit.services import record_events

    unmapped = 0
    for registration in registrations:
        registration_id = registration.pk
        mapped = Product.objects.filter(tenant_registration=registration)
        product_ids = list(mapped.values_list("product_id", flat=True))
        mapped.update(tenant_registration=None, mapped_at=None)
        record_events("product.unmap", actor=actor, object_type="product", object_ids=product_ids,
                      msp_id=registration.msp_id, details={"tenant_registration": registration_id, "reason": reason})
        unmapped += len(product_ids)

        record_event("tenant_registration.delete", actor=actor, object_type="tenant_registration",
                     object_id=str(registration_id), msp_id=registration.msp_id,
                     details={"name": registration.name, "management_url": registration.management_url,
                              "reason": reason, "products_unmapped": len(product_ids)})
        registration.delete()
        logger.info("Deleted tenant registration %s (%s) and unmapped %d products: %s", registration_id,
                    registration.management_url, len(product_ids), reason)
    return unmapped


def unmap_product_from_tenant(product_id: str, urls: list[str], *, actor: Actor, reason: str) -> bool:
    """Unmap ``product_id`` if it is mapped to a registration at one of ``urls``; return whether it was.

    For an EC decommissioned at its Director: its ZTP lookups then return
    409 ``not_mapped`` until its MSP maps it again, instead of leading it
    back to the tenant that retired it. A product mapped to another
    tenant's registration is left alone, so a tenant admin can only unmap
    its own products.
    """
    product = (Product.objects.select_for_update().select_related("tenant_registration")
               .filter(product_id=product_id, tenant_registration__management_url__in=urls).first())
    if product is None:
        return False
    registration = product.tenant_registration
    Product.objects.filter(pk=product.pk).update(tenant_registration=None, mapped_at=None)
    record_event("product.unmap", actor=actor, object_type="product", object_id=product_id,
                 msp_id=registration.msp_id, details={"tenant_registration": registration.pk, "reason": reason})
    logger.info("Unmapped %s from tenant registration %s (%s)", product_id, registration.pk, reason)
    return True

