"""The ZTP lookup: where should this Edge Controller go?"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from common import tokens
from provisioning.models import Product, ProvisioningAccessKey
from provisioning.product_ids import InvalidProductId, parse_product_id

logger = logging.getLogger(__name__)

# A lookup refreshes the product's last-seen fields at most this often, so a
# device retrying every few seconds does not turn into a write per request.
LAST_SEEN_WRITE_INTERVAL = timedelta(seconds=60)


class LookupFailed(Exception):
    """The lookup cannot return a Director; carries the API status, code and detail."""

    def __init__(self, status: int, code: str, detail: str, *, retry_after: int | None = None):
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after = retry_after
        super().__init__(detail)


@dataclass(frozen=True)
class LookupResult:
    product_id: str
    director_url: str
    access_key: str


def lookup_product(raw_product_id: str, *, access_key: ProvisioningAccessKey, facts: dict,
                   source_address: str | None) -> LookupResult:
    """Return the Director URL and tenant access key for a product, or raise :class:`LookupFailed`."""
    try:
        product_id = str(parse_product_id(raw_product_id))
    except InvalidProductId as error:
        raise LookupFailed(
            400, "invalid_product_id", f"{error}; send the Product ID from the device's eMMC."
        ) from error

    product = (
        Product.objects.select_related("tenant_registration")
        .filter(product_id=product_id)
        .first()
    )
    if product is None:
        raise LookupFailed(
            404, "unknown_product",
            f"Product ID {product_id} is not known to the Provision Server; ask the vendor to import it.",
        )

    _record_seen(product, facts, source_address)

    if product.state != Product.State.ACTIVE:
        raise LookupFailed(
            403, f"product_{product.state}",
            f"Product ID {product_id} is {product.state}; it cannot be provisioned until the vendor re-enables it.",
        )
    retry_after = settings.ZTSP_LOOKUP_RETRY_AFTER
    if product.claimed_at is None:
        raise LookupFailed(
            409, "not_claimed",
            f"Product ID {product_id} has not been claimed by an MSP yet; retry after {retry_after} seconds.",
            retry_after=retry_after,
        )
    if product.tenant_registration is None:
        raise LookupFailed(
            409, "not_mapped",
            f"Product ID {product_id} is not mapped to a tenant yet; retry after {retry_after} seconds.",
            retry_after=retry_after,
        )

    registration = product.tenant_registration
    logger.info("ZTP lookup for %s (access key %s) -> %s", product_id, access_key.key_id,
                registration.management_url)
    return LookupResult(
        product_id=product_id,
        director_url=registration.management_url,
        access_key=tokens.decrypt(registration.access_key_encrypted).decode(),
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
