"""The lookup history: a sampled record of ZTP lookup outcomes for the vendor and the owning MSP.

An EC that cannot be provisioned retries every ``Retry-After`` seconds, and
a fleet of them would turn a row per request into a write storm. So a row is
written at most once a minute per Product ID and outcome (status and code),
and rows for unknown or malformed Product IDs are also capped per client
address. Redis decides which request writes: ``cache.add`` is a SET NX with
an expiry, so of several concurrent lookups with the same outcome exactly one
gets to write.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time

from django.core.cache import cache

from provisioning.models import LookupEvent

logger = logging.getLogger(__name__)

# At most one row per Product ID and outcome in this many seconds.
EVENT_INTERVAL_SECONDS = 60
# Rows a minute for unknown or malformed Product IDs from one client address.
# NOTE: an IPv6 client can spread over many addresses; the lookup's per-key
# throttle still bounds what one provisioning access key can write.
UNKNOWN_EVENTS_PER_ADDRESS = 20
MAX_PRODUCT_ID_CHARS = 128


def record_lookup_event(product_id: str, *, access_key_id: str, status: int, code: str,
                        source_address: str | None, known_product: bool) -> bool:
    """Insert a :class:`LookupEvent` unless the sampling limits skip it, and return whether a row was written.

    ``product_id`` is the canonical Product ID, or the value as sent when it
    could not be parsed (cut to 128 characters).
    """
    product_id = product_id.replace("\x00", "").strip()[:MAX_PRODUCT_ID_CHARS]
    address = _ip_address_or_none(source_address)

    if not cache.add(outcome_cache_key(product_id, status, code), 1, timeout=EVENT_INTERVAL_SECONDS):
        return False
    if not known_product and not _take_unknown_allowance(address):
        return False

    LookupEvent.objects.create(product_id=product_id, access_key_id=access_key_id, status=status, code=code,
                               source_address=address)
    return True


def outcome_cache_key(product_id: str, status: int, code: str) -> str:
    """Return the cache key that marks a recorded outcome, hashed because the ID may be anything a client sent."""
    digest = hashlib.sha256(f"{product_id}\n{status}\n{code}".encode()).hexdigest()[:40]
    return f"ztp-lookup-event:{digest}"


def _current_minute() -> int:
    return int(time.time() // 60)


def _take_unknown_allowance(address: str | None) -> bool:
    """Count one row for an unknown Product ID against ``address`` in the current minute."""
    key = f"ztp-lookup-unknown:{address or 'none'}:{_current_minute()}"
    # The key outlives its minute, so it cannot expire between the add and the
    # increment; a new minute starts a new key.
    cache.add(key, 0, timeout=2 * 60)
    try:
        count = cache.incr(key)
    except ValueError:
        return False
    if count == UNKNOWN_EVENTS_PER_ADDRESS + 1:
        logger.warning("Lookup history: over %d unknown Product IDs this minute from %s; "
                       "recording no more of them until the next minute", UNKNOWN_EVENTS_PER_ADDRESS, address)
    return count <= UNKNOWN_EVENTS_PER_ADDRESS


def _ip_address_or_none(value: str | None) -> str | None:
    # A proxy that writes something other than an address into
    # X-Forwarded-For must not make the insert fail.
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None
