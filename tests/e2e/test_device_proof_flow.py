"""An EC with a per-device credential proves it at the lookup, on the live stack, and its request shows it."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django_tenants.utils import schema_context

from ec_client.state import write_device
from provisioning.models import CredentialType, Product
from tests.e2e.test_zero_touch_flow import _approve_when_pending, _options, _run_agent_in_thread
from tests.factories import provision_products

pytestmark = pytest.mark.e2e


def _run_to_tunnel_up(world, stack, tmp_path, product_id: str, credential: dict):
    state_dir = tmp_path / "ec"
    write_device(state_dir, product_id, stack.url("localhost"), world.provisioning_key, {"model": "EC100"},
                 credential=credential)
    outcome = _run_agent_in_thread(state_dir, _options(stack))
    approved = _approve_when_pending(stack, world.a, product_id)
    outcome["thread"].join(timeout=60)
    return approved, outcome["result"]


def test_ec_with_device_key_onboards_with_verified_request(world, live_stack, committed, tmp_path):
    device_key = ec.generate_private_key(ec.SECP256R1())
    product_id = provision_products(world.a.msp, world.a.registration)[0]
    Product.objects.filter(product_id=product_id).update(
        credential_type=CredentialType.PUBLIC_KEY,
        credential=device_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())
    private_pem = device_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()).decode()

    approved, result = _run_to_tunnel_up(world, live_stack, tmp_path, product_id,
                                         {"type": "public_key", "private_key_pem": private_pem})

    assert result.phase == "tunnel_up", result.error
    assert approved["device_proof"] == "verified"


def test_ec_with_device_secret_onboards_with_verified_request(world, live_stack, committed, tmp_path):
    product_id = provision_products(world.a.msp, world.a.registration)[0]
    Product.objects.filter(product_id=product_id).update(
        credential_type=CredentialType.SECRET_SHA256, credential=hashlib.sha256(b"burnt-in secret").hexdigest())

    approved, result = _run_to_tunnel_up(world, live_stack, tmp_path, product_id,
                                         {"type": "secret", "secret": "burnt-in secret"})

    assert result.phase == "tunnel_up", result.error
    with schema_context(world.a.tenant.schema_name):
        from onboarding.models import OnboardRequest

        assert OnboardRequest.objects.get(pk=approved["request_id"]).device_proof == "verified"
