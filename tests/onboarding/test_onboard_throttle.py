"""Throttles of POST /api/v1/onboard: wrong access keys, per Product ID, per client address, per tenant."""

from __future__ import annotations

import secrets

import pytest
from django.conf import settings
from django.test import override_settings

from tests.factories import make_csr, new_product_id
from tests.onboarding.helpers import post_onboard


def _rates(**changes):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **changes}
    return override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates})


@pytest.fixture
def address() -> str:
    """A client address of its own for each test, so no count leaks into another test of this run."""
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"


def _valid_body(product_id: str | None = None) -> dict:
    product_id = product_id or new_product_id()
    csr, _key = make_csr(product_id)
    return {"product_id": product_id, "csr": csr}


def test_wrong_access_keys_are_throttled_per_address(world, address):
    with _rates(onboard_wrong_key="2/min"):
        statuses = [post_onboard(world.a.domain, "wrong", _valid_body(), REMOTE_ADDR=address).status_code
                    for _ in range(2)]
        response = post_onboard(world.a.domain, "wrong", _valid_body(), REMOTE_ADDR=address)

    assert statuses == [401, 401]
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert 0 < int(response["Retry-After"]) <= 60


def test_wrong_key_throttle_blocks_even_the_right_key_from_that_address(world, address):
    with _rates(onboard_wrong_key="1/min"):
        post_onboard(world.a.domain, "wrong", _valid_body(), REMOTE_ADDR=address)
        response = post_onboard(world.a.domain, world.a.tenant_access_key, _valid_body(), REMOTE_ADDR=address)

    assert response.status_code == 429


def test_right_keys_do_not_count_as_wrong(world, address):
    with _rates(onboard_wrong_key="1/min"):
        statuses = [post_onboard(world.a.domain, world.a.tenant_access_key, _valid_body(),
                                 REMOTE_ADDR=address).status_code for _ in range(3)]

    assert statuses == [202, 202, 202]


def test_onboard_requests_are_throttled_per_product(world, address):
    product_id = new_product_id()
    with _rates(onboard_product="2/min"):
        statuses = [post_onboard(world.a.domain, world.a.tenant_access_key, _valid_body(product_id),
                                 REMOTE_ADDR=address).status_code for _ in range(2)]
        response = post_onboard(world.a.domain, world.a.tenant_access_key, _valid_body(product_id),
                                REMOTE_ADDR=address)
        other = post_onboard(world.a.domain, world.a.tenant_access_key, _valid_body(), REMOTE_ADDR=address)

    assert statuses == [202, 202]
    assert response.status_code == 429
    assert other.status_code == 202


def test_product_throttle_ignores_requests_with_wrong_key(world, address):
    product_id = new_product_id()
    with _rates(onboard_product="1/min"):
        post_onboard(world.a.domain, "wrong", _valid_body(product_id), REMOTE_ADDR=address)
        response = post_onboard(world.a.domain, world.a.tenant_access_key, _valid_body(product_id),
                                REMOTE_ADDR=address)

    assert response.status_code == 202, response.content


def test_onboard_requests_are_throttled_per_client_address(world, address):
    with _rates(onboard_client="2/min"):
        statuses = [post_onboard(world.a.domain, world.a.tenant_access_key, _valid_body(),
                                 REMOTE_ADDR=address).status_code for _ in range(2)]
        response = post_onboard(world.a.domain, world.a.tenant_access_key, _valid_body(), REMOTE_ADDR=address)

    assert statuses == [202, 202]
    assert response.status_code == 429


def test_client_throttle_is_per_tenant(world, address):
    with _rates(onboard_client="1/min"):
        post_onboard(world.a.domain, world.a.tenant_access_key, _valid_body(), REMOTE_ADDR=address)
        at_other_tenant = post_onboard(world.b.domain, world.b.tenant_access_key, _valid_body(),
                                       REMOTE_ADDR=address)

    assert at_other_tenant.status_code == 202, at_other_tenant.content
