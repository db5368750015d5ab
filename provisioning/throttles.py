"""Throttles of the ZTP lookup: per access key, per Product ID and per client address."""

from rest_framework.throttling import SimpleRateThrottle

from common.http import bearer_token, client_address
from common.tokens import hash_secret


class AccessKeyThrottle(SimpleRateThrottle):
    scope = "ztp_access_key"

    def get_cache_key(self, request, view):
        token = bearer_token(request)
        # The key itself never goes into the cache key: only its keyed hash.
        return self.cache_format % {"scope": self.scope, "ident": hash_secret(token)[:32]} if token else None


class ProductThrottle(SimpleRateThrottle):
    scope = "ztp_product"

    def get_cache_key(self, request, view):
        data = request.data if isinstance(request.data, dict) else {}
        product_id = str(data.get("product_id", "")).strip().lower()[:128]
        return self.cache_format % {"scope": self.scope, "ident": product_id} if product_id else None


class ClientAddressThrottle(SimpleRateThrottle):
    scope = "ztp_client"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": client_address(request)}
