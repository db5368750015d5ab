"""Devices reporting back to the Provision Server once they are onboarded.

The Provision Server never reads a Director's tables, so the only way it
learns that an EC reached its Director is the EC saying so: after its
management tunnel comes up, the EC sends ``POST /api/v1/ztp/report``. The
report is accepted only for the Director the product is mapped to right now,
and it is informational: a firmware key holder could misreport, and the
Director's records remain the authority on onboarding.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from audit.services import Actor, record_event
from msp.management_urls import InvalidManagementUrl, normalize_management_url
from provisioning.models import Product, ProvisioningAccessKey
from provisioning.product_ids import InvalidProductId, normalize_product_id
from provisioning.services.access_keys import key_allows_model
from provisioning.services.lookup import LookupFailed

logger = logging.getLogger(__name__)

MAX_SERIAL_CHARS = 64


@transaction.atomic
def record_onboarded(raw_product_id: str, *, access_key: ProvisioningAccessKey, director_url: str,
                     certificate_serial: str, source_address: str | None) -> Product:
    """Record that the EC reached the Director it is mapped to; raise :class:`LookupFailed` otherwise."""
    try:
        product_id = normalize_product_id(raw_product_id)
    except InvalidProductId as error:
        raise LookupFailed(400, "invalid_product_id", f"{error}; send the Product ID from the device's eMMC.") \
            from error
    serial = (certificate_serial or "").strip().lower()
    if not serial or len(serial) > MAX_SERIAL_CHARS or any(char not in "0123456789abcdef" for char in serial):
        raise LookupFailed(400, "invalid_certificate_serial",
                           f"certificate_serial {certificate_serial!r} must be the certificate's serial in hex.")
    try:
        reported_url = normalize_management_url(director_url)
    except InvalidManagementUrl as error:
        raise LookupFailed(400, "invalid_director_url", str(error)) from error
    if not key_allows_model(access_key, product_id.partition(":")[0]):
        raise LookupFailed(401, "access_key_not_allowed",
                           "This provisioning access key is not valid for this product's model.")

    product = Product.objects.select_for_update(of=("self",)).select_related("tenant_registration").filter(
        product_id=product_id
    ).first()
    if product is None:
        raise LookupFailed(404, "unknown_product", f"Product ID {product_id} is not known to the Provision Server.")
    registration = product.tenant_registration
    if registration is None or registration.management_url != reported_url:
        raise LookupFailed(409, "not_mapped_there",
                           f"Product ID {product_id} is not mapped to {reported_url}; look it up again.")

    if product.onboarded_certificate_serial != serial or product.onboarded_at is None:
        product.onboarded_at = timezone.now()
        product.onboarded_certificate_serial = serial
        product.save(update_fields=["onboarded_at", "onboarded_certificate_serial"])
        record_event("product.onboarded", actor=Actor.for_device(product_id, source_address), object_type="product",
                     object_id=product_id, msp_id=product.msp_id,
                     details={"director_url": reported_url, "certificate_serial": serial})
        logger.info("EC %s reports onboarded at %s (certificate %s)", product_id, reported_url, serial)
    return product


def ztp_status(product: Product) -> str:
    """Return ``never_seen``, ``looked_up`` or ``onboarded`` (reported since the current mapping)."""
    if product.onboarded_at and product.mapped_at and product.onboarded_at >= product.mapped_at:
        return "onboarded"
    return "looked_up" if product.last_lookup_at else "never_seen"
