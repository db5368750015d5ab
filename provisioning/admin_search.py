"""Indexed search for products in the vendor admin, usable with millions of rows.

Django's default admin search runs ``UPPER(...) LIKE UPPER('%term%')``, which
no index serves. A Product ID search here is an exact match or a prefix match
on canonical values, which the btree indexes on ``product_id`` and ``uuid``
serve.
"""

from __future__ import annotations

import re
import uuid

from django.db.models import Q, QuerySet

from provisioning.product_ids import InvalidProductId, normalize_product_id

UUID_PREFIX_RE = re.compile(r"[0-9a-f]{1,8}(-[0-9a-f]{0,4}){0,3}(-[0-9a-f]{0,12})?")
MODEL_PREFIX_RE = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]{0,31}):\s*\{?\s*([0-9A-Fa-f-]*)")


def _uuid_range(prefix: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """Return the [low, high] UUIDs that start with the hexadecimal ``prefix`` (hyphens ignored)."""
    digits = prefix.replace("-", "").lower()
    if not digits or len(digits) > 32 or any(char not in "0123456789abcdef" for char in digits):
        return None
    return uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))


def search_products(queryset: QuerySet, term: str) -> QuerySet:
    """Filter ``queryset`` by a full Product ID, a ``MODEL:uuid-prefix`` or a bare UUID prefix."""
    text = term.strip()
    if not text:
        return queryset
    try:
        return queryset.filter(product_id=normalize_product_id(text))
    except InvalidProductId:
        pass

    match = MODEL_PREFIX_RE.fullmatch(text)
    if match:
        model = match.group(1).upper()
        bounds = _uuid_range(match.group(2)) if match.group(2) else None
        if bounds:
            return queryset.filter(model_number=model, uuid__gte=bounds[0], uuid__lte=bounds[1])
        if not match.group(2):
            return queryset.filter(model_number=model)
        return queryset.none()

    if UUID_PREFIX_RE.fullmatch(text.lower()):
        low, high = _uuid_range(text)
        return queryset.filter(uuid__gte=low, uuid__lte=high)
    # A serial number is the only other thing staff paste into the box.
    return queryset.filter(Q(serial_number=text))
