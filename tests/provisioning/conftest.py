import pytest

from tests.provisioning.helpers import post_lookup


@pytest.fixture
def lookup(public_client, world):
    """Return a function that sends a ZTP lookup, by default with the world's provisioning access key."""

    def send(product_id, *, key=world.provisioning_key, facts=None):
        body = {"product_id": product_id}
        if facts is not None:
            body["facts"] = facts
        return post_lookup(public_client, body, key=key)

    return send
