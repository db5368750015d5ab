# The in-process tunnel gateway and raw TLS tunnels of the gateway tests.
from tests.gateway.conftest import connect, gateway  # noqa: F401


def pytest_collection_modifyitems(items):
    """Run this folder's live-stack tests after the other tests.

    The live stack's gateway stays subscribed to the run's push channel until
    the session ends, and tests of in-process gateways count the subscribers.
    The root conftest still moves the browser tests after these.
    """
    live = [item for item in items
            if "tests/policies/" in str(item.fspath).replace("\\", "/") and "live_stack" in item.fixturenames]
    if live:
        items[:] = [item for item in items if item not in live] + live
