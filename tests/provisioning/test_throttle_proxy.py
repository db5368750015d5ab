"""The per-address lookup throttle keys on the real client address, never on a header the client wrote."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings

from provisioning.throttles import ClientAddressThrottle
from tests.factories import provision_products
from tests.provisioning.helpers import post_lookup

CLIENT_RATE = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "ztp_client": "2/min"}


@pytest.fixture
def client_rate_two_per_minute():
    addresses = []

    def forget(address: str) -> str:
        addresses.append(address)
        cache.delete(ClientAddressThrottle.cache_format % {"scope": "ztp_client", "ident": address})
        return address

    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": CLIENT_RATE}):
        yield forget
    for address in addresses:
        cache.delete(ClientAddressThrottle.cache_format % {"scope": "ztp_client", "ident": address})


def _lookup(world, public_client, product_id, *, remote: str, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    public_client.defaults.update(extra)
    return post_lookup(public_client, {"product_id": product_id}, key=world.provisioning_key)


def test_spoofed_forwarded_for_without_proxy_is_ignored(world, public_client, client_rate_two_per_minute):
    remote = client_rate_two_per_minute("192.0.2.10")
    product_ids = provision_products(world.a.msp, world.a.registration, count=3)

    statuses = [
        _lookup(world, public_client, product_id, remote=remote, forwarded=f"198.51.100.{index}").status_code
        for index, product_id in enumerate(product_ids)
    ]

    # Without a trusted proxy the header is the client's own words: a new
    # X-Forwarded-For per request must not buy a fresh allowance.
    assert statuses == [200, 200, 429]


@override_settings(ZTSP_TRUSTED_PROXY_COUNT=1)
def test_proxy_appended_address_is_used(world, public_client, client_rate_two_per_minute):
    real = client_rate_two_per_minute(f"203.0.113.{uuid.uuid4().int % 200 + 1}")
    product_ids = provision_products(world.a.msp, world.a.registration, count=3)

    statuses = [
        # The client puts a different fake address first each time; our proxy
        # appends the real one last.
        _lookup(world, public_client, product_id, remote="10.0.0.1",
                forwarded=f"198.51.100.{index}, {real}").status_code
        for index, product_id in enumerate(product_ids)
    ]

    assert statuses == [200, 200, 429]


@override_settings(ZTSP_TRUSTED_PROXY_COUNT=1)
def test_throttled_lookup_has_retry_after(world, public_client, client_rate_two_per_minute):
    real = client_rate_two_per_minute("203.0.113.250")
    product_ids = provision_products(world.a.msp, world.a.registration, count=3)

    responses = [_lookup(world, public_client, product_id, remote="10.0.0.1", forwarded=real)
                 for product_id in product_ids]

    assert responses[-1].status_code == 429
    assert int(responses[-1]["Retry-After"]) > 0
    assert responses[-1].json()["code"] == "throttled"
