"""Disabling, decommissioning and re-enabling products (vendor actions)."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.services import Actor, record_events
from provisioning.models import Product

logger = logging.getLogger(__name__)


@transaction.atomic
def set_products_state(products: QuerySet[Product], state: str, *, actor: Actor, note: str = "") -> int:
    """Put every product of ``products`` in ``state``; return how many changed.

    A disabled or decommissioned product gets 403 at its next ZTP lookup.
    Products already in that state are left alone and not audited again.
    """
    if state not in Product.State.values:
        raise ValueError(f"unknown product state {state!r}; expected one of {', '.join(Product.State.values)}")
    changing = list(products.exclude(state=state).select_for_update().order_by("pk").values_list("pk", "product_id"))
    Product.objects.filter(pk__in=[pk for pk, _ in changing]).update(state=state)
    record_events(f"product.{state}", actor=actor, object_type="product",
                  object_ids=[product_id for _, product_id in changing],
                  details={"note": note[:500], "at": timezone.now().isoformat()} if note else None)
    logger.info("%s set %d products to %s", actor.name, len(changing), state)
    return len(changing)
