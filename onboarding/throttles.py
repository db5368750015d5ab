"""Throttles of ``POST /api/v1/onboard``: per client address, per Product ID, and wrong access keys.

The cache keys go through django-tenants' key function, so each count is
per tenant: a flood at one tenant's host does not slow another's ECs.
"""

from __future__ import annotations

from django.core.cache import cache

from provisioning.throttles import ClientAddressThrottle, ProductIdThrottle


class OnboardClientThrottle(ClientAddressThrottle):
    scope = "onboard_client"


class OnboardProductThrottle(ProductIdThrottle):
    """Counts onboard requests per Product ID; checked only after the tenant access key passed."""

    scope = "onboard_product"


class WrongAccessKeyThrottle(ClientAddressThrottle):
    """Counts wrong tenant access keys per client address.

    ``allow_request`` only checks the count; :meth:`record_failure` adds to
    it, so correct keys never use up the allowance.
    """

    scope = "onboard_wrong_key"

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
