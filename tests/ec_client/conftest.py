import pytest

from .servers import ThrowawayPki


@pytest.fixture(scope="session")
def pki() -> ThrowawayPki:
    return ThrowawayPki()
