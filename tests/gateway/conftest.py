import pytest

from .helpers import GatewayThread, RawTunnel


@pytest.fixture
def gateway(world, committed):
    """A tunnel gateway in this process, subscribed to the push channel, with the default renewal limit."""
    running = GatewayThread().start()
    yield running
    running.stop()


@pytest.fixture
def connect(gateway, tmp_path):
    """Open raw tunnels to ``gateway`` as an EC and send its hello; every tunnel is closed after the test."""
    opened: list[RawTunnel] = []

    def open_tunnel(ec, *, hello: bool = True) -> tuple[RawTunnel, dict | None]:
        files = ec.write_files(tmp_path / f"ec-{len(opened)}")
        tunnel = RawTunnel(gateway.port, files)
        opened.append(tunnel)
        reply = tunnel.hello(ec.product_id) if hello else None
        return tunnel, reply

    yield open_tunnel
    for tunnel in opened:
        tunnel.close()
