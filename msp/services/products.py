"""Moving products along the MSP side of their life: allocate, claim, map.

Each operation takes a list of ``(position, raw Product ID)`` items, where the
position is a CSV line number or a 1-based list index, and returns a
:class:`BulkResult` that lists every item: changed, already in the wanted
state, or rejected with its reason. One bad item never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from audit.services import Actor, record_events
from msp.models import MSP, TenantRegistration
from provisioning.models import Product
from provisioning.product_ids import InvalidProductId, parse_product_id

logger = logging.getLogger(__name__)

CHUNK_SIZE = 5000
# Products of another MSP are reported exactly like unknown ones, so an MSP
# cannot probe which Product IDs exist.
NOT_YOURS = "not allocated to this MSP"


@dataclass
class RejectedItem:
    position: int
    value: str
    reason: str


@dataclass
class BulkResult:
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    rejected: list[RejectedItem] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "changed": len(self.changed),
            "unchanged": len(self.unchanged),
            "rejected": [
                {"position": item.position, "value": item.value, "reason": item.reason} for item in self.rejected
            ],
        }


def numbered(values: Iterable[str]) -> list[tuple[int, str]]:
    """Number plain list items from 1, as positions for a :class:`BulkResult`."""
    return list(enumerate(values, start=1))


def _parse_items(items: Iterable[tuple[int, str]], result: BulkResult) -> dict[str, tuple[int, str]]:
    valid: dict[str, tuple[int, str]] = {}
    for position, raw in items:
        value = str(raw).strip() if raw is not None else ""
        try:
            canonical = str(parse_product_id(value))
        except InvalidProductId as error:
            result.rejected.append(RejectedItem(position, value, error.reason))
            continue
        if canonical in valid:
            result.rejected.append(RejectedItem(position, value, f"duplicate of position {valid[canonical][0]}"))
            continue
        valid[canonical] = (position, value)
    return valid


def _apply(items: Iterable[tuple[int, str]], decide: Callable[[Product], str | None],
           changes: Callable[[], dict], *, missing_reason: str) -> BulkResult:
    """Lock the named products chunk by chunk and apply ``changes`` to those ``decide`` accepts.

    ``decide`` returns None to change the product, ``"unchanged"``, or a
    rejection reason.
    """
    result = BulkResult()
    valid = _parse_items(items, result)
    ids = list(valid)
    for start in range(0, len(ids), CHUNK_SIZE):
        chunk = ids[start : start + CHUNK_SIZE]
        # Lock in primary key order so two bulk operations cannot deadlock.
        products = {
            product.product_id: product
            for product in Product.objects.select_for_update().filter(product_id__in=chunk).order_by("pk")
        }
        to_change = []
        for product_id in chunk:
            position, value = valid[product_id]
            product = products.get(product_id)
            if product is None:
                result.rejected.append(RejectedItem(position, value, missing_reason))
                continue
            verdict = decide(product)
            if verdict is None:
                to_change.append(product.pk)
                result.changed.append(product_id)
            elif verdict == "unchanged":
                result.unchanged.append(product_id)
            else:
                result.rejected.append(RejectedItem(position, value, verdict))
        if to_change:
            Product.objects.filter(pk__in=to_change).update(**changes())
    result.rejected.sort(key=lambda item: item.position)
    return result


@transaction.atomic
def allocate_products(msp: MSP, items: Iterable[tuple[int, str]], *, actor: Actor) -> BulkResult:
    """Allocate products to ``msp`` (a vendor action, e.g. one purchase order)."""

    def decide(product: Product) -> str | None:
        if product.msp_id == msp.pk:
            return "unchanged"
        if product.msp_id is not None:
            return "already allocated to another MSP; take it back first"
        return None

    result = _apply(items, decide, lambda: {"msp": msp, "allocated_at": timezone.now()},
                    missing_reason="unknown Product ID; import it first")
    record_events("product.allocate", actor=actor, object_type="product", object_ids=result.changed,
                  msp_id=msp.pk)
    logger.info("Allocated %d products to MSP %s (%d unchanged, %d rejected)",
                len(result.changed), msp.slug, len(result.unchanged), len(result.rejected))
    return result


@transaction.atomic
def claim_products(msp: MSP, items: Iterable[tuple[int, str]], *, actor: Actor) -> BulkResult:
    """Claim products for ``msp``; only products allocated to it can be claimed."""

    def decide(product: Product) -> str | None:
        if product.msp_id != msp.pk:
            return NOT_YOURS
        if product.claimed_at is not None:
            return "unchanged"
        return None

    result = _apply(items, decide, lambda: {"claimed_at": timezone.now()}, missing_reason=NOT_YOURS)
    record_events("product.claim", actor=actor, object_type="product", object_ids=result.changed, msp_id=msp.pk)
    logger.info("MSP %s claimed %d products (%d unchanged, %d rejected)",
                msp.slug, len(result.changed), len(result.unchanged), len(result.rejected))
    return result


@transaction.atomic
def map_products_to_tenant(msp: MSP, registration: TenantRegistration, items: Iterable[tuple[int, str]], *,
                           actor: Actor) -> BulkResult:
    """Map claimed products of ``msp`` to one of its tenant registrations."""
    if registration.msp_id != msp.pk:
        raise ValueError(f"tenant registration {registration.pk} does not belong to MSP {msp.slug}")
    _lock_registration_against_delete(registration)

    def decide(product: Product) -> str | None:
        if product.msp_id != msp.pk:
            return NOT_YOURS
        if product.claimed_at is None:
            return "not claimed yet; claim it first"
        if product.tenant_registration_id == registration.pk:
            return "unchanged"
        return None

    result = _apply(items, decide, lambda: {"tenant_registration": registration, "mapped_at": timezone.now()},
                    missing_reason=NOT_YOURS)
    record_events("product.map", actor=actor, object_type="product", object_ids=result.changed, msp_id=msp.pk,
                  details={"tenant_registration": registration.pk, "management_url": registration.management_url})
    logger.info("MSP %s mapped %d products to %s (%d unchanged, %d rejected)", msp.slug, len(result.changed),
                registration.management_url, len(result.unchanged), len(result.rejected))
    return result


def _lock_registration_against_delete(registration: TenantRegistration) -> None:
    """Take a FOR KEY SHARE lock on the registration, or raise DoesNotExist if it is gone.

    It is the lock PostgreSQL's own foreign key checks take: maps to one
    registration still run side by side, while a delete waits for them and
    then finds their products (see delete_tenant_registration).
    """
    table = connection.ops.quote_name(TenantRegistration._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR KEY SHARE", [registration.pk])  # noqa: S608
        if cursor.fetchone() is None:
            raise TenantRegistration.DoesNotExist(f"tenant registration {registration.pk} was deleted meanwhile")


@transaction.atomic
def unmap_products(msp: MSP, items: Iterable[tuple[int, str]], *, actor: Actor) -> BulkResult:
    """Remove the tenant mapping of claimed products of ``msp``."""

    def decide(product: Product) -> str | None:
        if product.msp_id != msp.pk:
            return NOT_YOURS
        if product.tenant_registration_id is None:
            return "unchanged"
        return None

    result = _apply(items, decide, lambda: {"tenant_registration": None, "mapped_at": None},
                    missing_reason=NOT_YOURS)
    record_events("product.unmap", actor=actor, object_type="product", object_ids=result.changed, msp_id=msp.pk)
    return result
