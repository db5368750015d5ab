"""The EC's own tunnel client (ec_client) stores a pushed config atomically and acknowledges it."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from django_tenants.utils import schema_context

from ec_client.http import Backoff, ResolveOverrides
from ec_client.state import CA_CHAIN_FILE, CERT_FILE, CONFIG_FILE, KEY_FILE
from ec_client.tunnel import TunnelClient
from tests.factories import key_pem
from tests.gateway.helpers import onboard_ec

from .helpers import ADMIN_ACTOR, controller, wait_for

pytestmark = pytest.mark.e2e


def _write_state(ec, state_dir) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / KEY_FILE).write_bytes(key_pem(ec.key))
    (state_dir / CERT_FILE).write_text(ec.certificate_pem)
    (state_dir / CA_CHAIN_FILE).write_text(ec.chain_pem)


def _run_client(client: TunnelClient, stop: threading.Event) -> threading.Thread:
    async def main() -> None:
        task = asyncio.create_task(client.run_forever())
        while not stop.is_set():
            await asyncio.sleep(0.05)
        task.cancel()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="ec-client", daemon=True)
    thread.start()
    return thread


def _stored_version(state_dir) -> int | None:
    try:
        return json.loads((state_dir / CONFIG_FILE).read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def test_ec_client_applies_pushed_manual_config(world, gateway, tmp_path):
    from policies.services import set_manual_config

    ec = onboard_ec(world.a)
    state_dir = tmp_path / "ec"
    _write_state(ec, state_dir)
    client = TunnelClient(state_dir=state_dir, product_id=ec.product_id, firmware="1.0.0", host="localhost",
                          port=gateway.port, overrides=ResolveOverrides.parse([f"localhost:{gateway.port}:127.0.0.1"]),
                          backoff=Backoff(cap=1.0, base=0.1))
    stop = threading.Event()
    thread = _run_client(client, stop)
    try:
        assert wait_for(lambda: controller(ec.schema_name, ec.product_id).online)

        with schema_context(ec.schema_name):
            set_manual_config(controller(ec.schema_name, ec.product_id), {"hostname": "edge-9"}, actor=ADMIN_ACTOR)

        assert wait_for(lambda: _stored_version(state_dir) == 1)
        assert json.loads((state_dir / CONFIG_FILE).read_text())["body"] == {"hostname": "edge-9"}
        assert wait_for(lambda: controller(ec.schema_name, ec.product_id).applied_config_version == 1)
    finally:
        stop.set()
        thread.join(timeout=10)
