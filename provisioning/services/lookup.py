"""The ZTP lookup: where should this Edge Controller go?"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from common import tokens
from provisioning.models import Product, ProvisioningAccessKey
from provisioning.product_ids import InvalidProductId, parse_product_id
from provisioning.services import device_proof
from provisioning.services.access_keys import key_allows_model
from provisioning.services.lookup_history import record_lookup_event

if TYPE_CHECKING:
    from msp.models import TenantRegistration

logger = logging.getLogger(__name__)

# A lookup refreshes the product's last-seen fields at most this often, so a
# device retrying every few seconds does not turn into a write per request.
LAST_SEEN_WRITE_INTERVAL = timedelta(seconds=60)


class LookupFailed(Exception):
    """The lookup cannot return a Director; carries the API status, code and detail."""

    def __init__(self, status: int, code: str, detail: str, *, retry_after: int | None = None,
                 extra: dict | None = None):
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after = retry_after
        # More fields of the error body, e.g. the challenge of a proof request.
        self.extra = extra or {}
        super().__init__(detail)


@dataclass(frozen=True)
class LookupResult:
    product_id: str
    director_url: str
    access_key: str
    # Set when the EC proved possession of its device credential: a token
    # for the Director (see provisioning.services.device_proof).
    lookup_proof: str | None = None


@dataclass(frozen=True)
class LookupDecision:
    """The outcome of a ZTP lookup: an HTTP status, a code and a detail.

    ``registration`` is set only with status 200, and the caller decides
    whether to decrypt its access key.
    """

    status: int
    code: str
    detail: str
    retry_after: int | None = None
    registration: TenantRegistration | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


# The code of a lookup that returned a Director; the 200 response itself carries no code.
LOOKUP_OK = "ok"


def decide_lookup(product_id: str, product: Product | None, *, retry_after: int) -> LookupDecision:
    """Decide what a lookup of ``product_id`` returns, from the product row alone.

    Reads and writes nothing, so the lookup and the route explanation of
    the MSP and vendor APIs return the same result. The access key check
    and the throttles run before this and are not part of it.
    """
    if product is None:
        return LookupDecision(
            404, "unknown_product",
            f"Product ID {product_id} is not known to the Provision Server; ask the vendor to import it.",
        )
    if product.state != Product.State.ACTIVE:
        return LookupDecision(
            403, f"product_{product.state}",
            f"Product ID {product_id} is {product.state}; it cannot be provisioned until the vendor re-enables it.",
        )
    if product.claimed_at is None:
        return LookupDecision(
            409, "not_claimed",
            f"Product ID {product_id} has not been claimed by an MSP yet; retry after {retry_after} seconds.",
            retry_after=retry_after,
        )
    if product.tenant_registration is None:
        return LookupDecision(
            409, "not_mapped",
            f"Product ID {product_id} is not mapped to a tenant yet; retry after {retry_after} seconds.",
            retry_after=retry_after,
        )
    registration = product.tenant_registration
    return LookupDecision(200, LOOKUP_OK, f"Product ID {product_id} goes to {registration.management_url}.",
                          registration=registration)


def lookup_product(raw_product_id: str, *, access_key: ProvisioningAccessKey, facts: dict,
                   source_address: str | None, proof=None) -> LookupResult:
    """Return the Director URL and tenant access key for a product, or raise :class:`LookupFailed`.

    A product with an imported device credential also needs ``proof`` (see
    :mod:`provisioning.services.device_proof`); it is checked only when the
    lookup would return the tenant access key, so a device still waiting to
    be mapped does not sign on every retry. Every outcome is also offered to
    the lookup history, which keeps at most one row per product and outcome
    a minute.
    """
    try:
        product_id = str(parse_product_id(raw_product_id))
    except InvalidProductId as error:
        record_lookup_event(raw_product_id, access_key_id=access_key.key_id, status=400,
                            code="invalid_product_id", source_address=source_address, known_product=False)
        raise LookupFailed(
            400, "invalid_product_id", f"{error}; send the Product ID from the device's eMMC."
        ) from error

    model_number = product_id.partition(":")[0]
    if not key_allows_model(access_key, model_number):
        # Decided from the Product ID alone, before any product row is read,
        # so a restricted key learns nothing about other models' products.
        raise LookupFailed(
            401, "access_key_not_allowed",
            f"This provisioning access key is not valid for model {model_number}; the device needs firmware "
            "with a key for its model.",
        )

    product = (
        Product.objects.select_related("tenant_registration")
        .filter(product_id=product_id)
        .first()
    )
    if product is not None:
        _record_seen(product, facts, source_address)

    decision = decide_lookup(product_id, product, retry_after=settings.ZTSP_LOOKUP_RETRY_AFTER)
    proven = None
    if decision.ok and device_proof.requires_proof(product):
        try:
            proven = device_proof.verify_proof(product, proof)
        except device_proof.DeviceProofFailed as failure:
            decision = LookupDecision(401, failure.code, failure.detail)
            record_lookup_event(product_id, access_key_id=access_key.key_id, status=401, code=failure.code,
                                source_address=source_address, known_product=True)
            if failure.code != "device_proof_required":
                logger.warning("ZTP lookup for %s (access key %s) failed its device proof: %s", product_id,
                               access_key.key_id, failure.code)
            raise LookupFailed(401, failure.code, failure.detail, extra={
                "challenge": failure.challenge, "challenge_expires_in": device_proof.CHALLENGE_TTL_SECONDS,
            }) from failure
    record_lookup_event(product_id, access_key_id=access_key.key_id, status=decision.status, code=decision.code,
                        source_address=source_address, known_product=product is not None)
    if not decision.ok:
        raise LookupFailed(decision.status, decision.code, decision.detail, retry_after=decision.retry_after)

    registration = decision.registration
    logger.info("ZTP lookup for %s (access key %s) -> %s", product_id, access_key.key_id,
                registration.management_url)
    return LookupResult(
        product_id=product_id,
        director_url=registration.management_url,
        access_key=tokens.decrypt(registration.access_key_encrypted).decode(),
        lookup_proof=device_proof.issue_lookup_proof(proven) if proven else None,
    )


def _record_seen(product: Product, facts: dict, source_address: str | None) -> None:
    """Update last-seen fields with one conditional UPDATE, skipped when written recently."""
    now = timezone.now()
    facts_changed = bool(facts) and facts != product.last_facts
    recently = product.last_lookup_at is not None and now - product.last_lookup_at < LAST_SEEN_WRITE_INTERVAL
    if recently and not facts_changed and source_address == product.last_lookup_address:
        return
    changes = {"last_lookup_at": now, "last_lookup_address": source_address or None}
    if facts:
        changes["last_facts"] = facts
    # The condition keeps concurrent lookups of one product from all writing.
    Product.objects.filter(pk=product.pk).filter(
        Q(last_lookup_at__isnull=True) | Q(last_lookup_at__lt=now - timedelta(seconds=1))
    ).update(**changes)
