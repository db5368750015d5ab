"""Throttles of ``POST /api/v1/onboard``: per client address, per Product ID, and wrong access keys.

The cache keys go through django-tenants' key function, so each count is
per tenant: a flood at one tenant's host does not slow another's ECs.
"""

from __future__ import annotations

from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from common.http import client_address
from provisioning.product_ids import InvalidProductId, normalize_product_id


class _SettingsRateThrottle(SimpleRateThrottle):
    def get_rate(self):
        # Read per request so that settings changes (and tests) take effect.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class OnboardClientThrottle(_SettingsRateThrottle):
    scope = "onboard_client"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": client_address(request)}


class OnboardProductThrottle(_SettingsRateThrottle):
    """Counts onboard requests per Product ID; checked only after the tenant access key passed."""

    scope = "onboard_product"

    def get_cache_key(self, request, view):
        data = request.data if isinstance(request.data, dict) else {}
        raw = str(data.get("product_id", ""))[:200]
        try:
            ident = normalize_product_id(raw)
        except InvalidProductId:
            ident = raw.strip().lower()
        return self.cache_format % {"scope": self.scope, "ident": ident} if ident else None


class WrongAccessKeyThrottle(_SettingsRateThrottle):
    """Counts wrong tenant access keys per client address.

    ``allow_request`` only checks the count; :meth:`record_failure` adds to
    it, so correct keys never use up the allowance.
    """

    scope = "onboard_wrong_key"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": client_address(request)}

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        self.history = cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        return len(self.history) < self.num_requests

    def record_failure(self) -> None:
        if self.rate is None:
            return
        self.history.insert(0, self.now)
        cache.set(self.key, self.history, self.duration)
