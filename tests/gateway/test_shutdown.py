"""A stopping gateway sends each EC a reconnect message, and the EC waits a random part of the window."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ec_client.http import Backoff, ResolveOverrides
from ec_client.state import CA_CHAIN_FILE, CERT_FILE, KEY_FILE
from ec_client.tunnel import ReconnectRequested, TunnelClient
from gateway.server import RECONNECT_SPREAD_SECONDS
from tests.factories import key_pem

from .helpers import GatewayThread, RawTunnel, onboard_ec

# The gateway runs in its own thread with its own database connection, so the test data is committed.
pytestmark = pytest.mark.e2e


def test_stop_tells_connected_ec_to_reconnect(world, committed, tmp_path):
    running = GatewayThread().start()
    ec = onboard_ec(world.a)
    tunnel = RawTunnel(running.port, ec.write_files(tmp_path))
    try:
        assert tunnel.hello(ec.product_id)["type"] == "hello"

        running.stop()

        assert tunnel.receive() == {"type": "reconnect", "reason": "shutdown", "within": RECONNECT_SPREAD_SECONDS}
        assert tunnel.receive() is None
    finally:
        tunnel.close()


@pytest.mark.parametrize(("within", "expected"), [(5, 5.0), (-3, 0.0), (10_000, 300.0), ("soon", 10.0),
                                                  (float("nan"), 10.0)])
def test_reconnect_window_is_clamped(within, expected):
    assert ReconnectRequested({"type": "reconnect", "within": within}).within == expected


def test_ec_client_reconnects_after_gateway_restart(world, committed, tmp_path):
    running = GatewayThread().start()
    port = running.port
    ec = onboard_ec(world.a)
    state_dir = tmp_path / "ec"
    state_dir.mkdir()
    (state_dir / KEY_FILE).write_bytes(key_pem(ec.key))
    (state_dir / CERT_FILE).write_text(ec.certificate_pem)
    (state_dir / CA_CHAIN_FILE).write_text(ec.chain_pem)
    disconnects: list[str] = []
    client = TunnelClient(state_dir=state_dir, product_id=ec.product_id, firmware="1.0.0", host="localhost",
                          port=port, overrides=ResolveOverrides.parse([f"localhost:{port}:127.0.0.1"]),
                          backoff=Backoff(cap=30.0, base=20.0), on_disconnected=disconnects.append)
    stop = threading.Event()

    async def main() -> None:
        task = asyncio.create_task(client.run_forever())
        while not stop.is_set():
            await asyncio.sleep(0.05)
        task.cancel()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    replacement = None
    try:
        deadline = time.monotonic() + 15
        while client.connections < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.connections == 1

        running.stop()
        replacement = GatewayThread().start(port=port)
        # The backoff would wait 20 s; the reconnect notice allows at most RECONNECT_SPREAD_SECONDS.
        deadline = time.monotonic() + RECONNECT_SPREAD_SECONDS + 10
        while client.connections < 2 and time.monotonic() < deadline:
            time.sleep(0.1)

        assert client.connections == 2
        assert disconnects[0] == "reconnect requested (shutdown)"
    finally:
        stop.set()
        thread.join(timeout=10)
        if replacement is not None:
            replacement.stop()
