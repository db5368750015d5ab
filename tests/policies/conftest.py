# The in-process tunnel gateway and raw TLS tunnels of the gateway tests.
from tests.gateway.conftest import connect, gateway  # noqa: F401

