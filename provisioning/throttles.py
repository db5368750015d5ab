"""Throttles of the ZTP lookup: per access key, per Product ID and per client address."""

import hashlib

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from common.http import bearer_token, client_address
from common.tokens import hash_secret
from provisioning.product_ids import InvalidProductId, normalize_product_id


class SettingsRateThrottle(SimpleRateThrottle):
    def get_rate(self):
        # DRF copies the rates once at import; reading them per request lets
        # settings changes (and tests) take effect.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class AccessKeyThrottle(SettingsRateThrottle):
    scope = "ztp_access_key"

    def get_cache_key(self, request, view):
        token = bearer_token(request)
        # The key itself never goes into the cache key: only its keyed hash.
        return self.cache_format % {"scope": self.scope, "ident": hash_secret(token)[:32]} if token else None


class ProductIdThrottle(SettingsRateThrottle):
    """Counts requests per Product ID of the JSON body; subclasses set ``scope``.

    A well-formed Product ID counts in its canonical form, so every spelling
    of one product shares an allowance. Anything else counts under a hash of
    its text, which keeps odd input out of the cache key.
    """

    def get_cache_key(self, request, view):
        data = request.data if isinstance(request.data, dict) else {}
        raw = str(data.get("product_id", ""))[:200]
        try:
            ident = normalize_product_id(raw)
        except InvalidProductId:
            text = raw.strip().lower()
            ident = f"raw-{hashlib.sha256(text.encode()).hexdigest()[:32]}" if text else ""
        return self.cache_format % {"scope": self.scope, "ident": ident} if ident else None


class ProductThrottle(ProductIdThrottle):
    """Counts lookups per product; checked only after the access key passed,
    so a caller without a valid key cannot use up a device's allowance."""

    scope = "ztp_product"


class ClientAddressThrottle(SettingsRateThrottle):
    scope = "ztp_client"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": client_address(request)}
