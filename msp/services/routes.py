"""The route of a product: the ZTP lookup's result for it right now, with the facts that decide it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings

from provisioning.models import LookupEvent, Product
from provisioning.services.device_proof import requires_proof
from provisioning.services.lookup import LookupDecision, decide_lookup


@dataclass(frozen=True)
class RouteReason:
    """One fact behind the decision; ``at`` is when it became true, if known."""

    code: str
    detail: str
    at: datetime | None = None


@dataclass
class RouteExplanation:
    product: Product
    decision: LookupDecision
    reasons: list[RouteReason] = field(default_factory=list)

    @property
    def director_url(self) -> str | None:
        """The management URL of the mapped tenant, whether or not the lookup would return it now."""
        registration = self.product.tenant_registration
        return registration.management_url if registration else None


def explain_route(product: Product, *, history_since: datetime | None = None) -> RouteExplanation:
    """Return what a ZTP lookup of ``product`` would return now, with the facts that decide it.

    ``history_since`` leaves out recorded lookups older than that time, so
    an MSP gets no outcome from before the product was allocated to it.
    """
    decision = decide_lookup(product.product_id, product, retry_after=settings.ZTSP_LOOKUP_RETRY_AFTER)
    reasons = [
        _state_reason(product),
        _allocation_reason(product),
        _claim_reason(product),
        _mapping_reason(product),
        _device_credential_reason(product),
        _last_lookup_reason(product, history_since),
    ]
    return RouteExplanation(product, decision, [reason for reason in reasons if reason is not None])


def _state_reason(product: Product) -> RouteReason:
    if product.state == Product.State.ACTIVE:
        return RouteReason("state_active", "The product is active.")
    return RouteReason(f"state_{product.state}",
                       f"The product is {product.state}, so every lookup is rejected with 403 until the vendor "
                       "re-enables it.")


def _device_credential_reason(product: Product) -> RouteReason | None:
    if not requires_proof(product):
        return None
    return RouteReason("device_proof_required",
                       f"The vendor imported a device credential ({product.credential_type}), so the lookup returns "
                       "the Director only after the EC signs a challenge with it; until then it answers 401 "
                       "device_proof_required.")


def _allocation_reason(product: Product) -> RouteReason:
    if product.msp_id is None:
        return RouteReason("not_allocated", "The product is not allocated to any MSP.")
    return RouteReason("allocated", f"Allocated to MSP {product.msp.name} ({product.msp.slug}).",
                       product.allocated_at)


def _claim_reason(product: Product) -> RouteReason:
    if product.claimed_at is None:
        return RouteReason("not_claimed", "Not claimed yet; claim it with POST /api/v1/msp/products/claim.")
    return RouteReason("claimed", "Claimed by its MSP.", product.claimed_at)


def _mapping_reason(product: Product) -> RouteReason | None:
    registration = product.tenant_registration
    if registration is None:
        if product.claimed_at is None:
            return None
        return RouteReason("not_mapped", "Not mapped to a tenant yet; map it with POST /api/v1/msp/products/map.")
    return RouteReason(
        "mapped",
        f"Mapped to tenant registration {registration.pk} ({registration.name}, {registration.management_url}).",
        product.mapped_at,
    )


def _last_lookup_reason(product: Product, history_since: datetime | None) -> RouteReason:
    if product.last_lookup_at is None:
        return RouteReason("never_looked_up", "The device has not looked itself up yet.")

    address = product.last_lookup_address or "an unknown address"
    detail = f"Last looked up from {address}."
    events = LookupEvent.objects.filter(product_id=product.product_id)
    if history_since is not None:
        events = events.filter(at__gte=history_since)
    last_event = events.order_by("-at", "-id").first()
    at = product.last_lookup_at
    if last_event is not None:
        detail += (f" The last recorded outcome was {last_event.status} {last_event.code} "
                   f"at {last_event.at:%Y-%m-%d %H:%M:%S} UTC.")
        # The product row is written at most once a minute; the history is exact.
        at = max(at, last_event.at)
    return RouteReason("last_lookup", detail, at)
