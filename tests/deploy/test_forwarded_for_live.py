"""The client address that the live web server records when a client forges X-Forwarded-For.

uvicorn trusts X-Forwarded-For from 127.0.0.1 by default, so a local client
could set its own recorded address unless the web server is started with
--no-proxy-headers. ZTSP_TRUSTED_PROXY_COUNT is 0 here: no proxy is trusted.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from provisioning.models import LookupEvent
from tests.factories import provision_products

pytestmark = pytest.mark.e2e

FORGED_ADDRESS = "203.0.113.9"


def test_lookup_history_ignores_forged_forwarded_for(live_stack, world, committed):
    [product_id] = provision_products(world.a.msp, world.a.registration)
    request = urllib.request.Request(
        f"{live_stack.url()}/api/v1/ztp/lookup", data=json.dumps({"product_id": product_id}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {world.provisioning_key}",
                 "X-Forwarded-For": FORGED_ADDRESS})

    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200

    [event] = LookupEvent.objects.filter(product_id=product_id)
    assert event.source_address == "127.0.0.1"
