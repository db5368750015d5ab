"""The device credential in device.json and the signatures the EC makes with it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ec_client.proof import key_sha256, proof_message, sign_with_key, sign_with_secret
from ec_client.state import StateError, load_device, write_device

PRODUCT_ID = "EC100:7c9e6679-7425-40de-944b-e07fc1f90ae7"


def test_device_json_keeps_credential(tmp_path):
    write_device(tmp_path, PRODUCT_ID, "http://localhost:8000", "key", {}, credential={"type": "secret",
                                                                                      "secret": "s3"})

    assert load_device(tmp_path).credential == {"type": "secret", "secret": "s3"}


def test_device_credential_is_not_in_repr(tmp_path):
    write_device(tmp_path, PRODUCT_ID, "http://localhost:8000", "key", {}, credential={"type": "secret",
                                                                                      "secret": "s3cr3t"})

    assert "s3cr3t" not in repr(load_device(tmp_path))


@pytest.mark.parametrize("credential", [{"type": "password", "secret": "x"}, {"type": "public_key"}, "text"],
                         ids=["unknown_type", "no_private_key", "not_object"])
def test_write_device_rejects_bad_credential(tmp_path, credential):
    with pytest.raises(ValueError, match="invalid credential"):
        write_device(tmp_path, PRODUCT_ID, "http://localhost:8000", "key", {}, credential=credential)


def test_load_device_names_bad_credential(tmp_path):
    write_device(tmp_path, PRODUCT_ID, "http://localhost:8000", "key", {})
    document = json.loads((tmp_path / "device.json").read_text())
    document["credential"] = {"type": "secret", "secret": ""}
    (tmp_path / "device.json").write_text(json.dumps(document))

    with pytest.raises(StateError, match="credential: 'secret' is missing"):
        load_device(tmp_path)


def test_key_signature_verifies_over_product_id_and_challenge():
    key = ec.generate_private_key(ec.SECP256R1())

    signature = base64.b64decode(sign_with_key(key, PRODUCT_ID, "c1.1.n.m", "ab" * 32))

    key.public_key().verify(signature, proof_message(PRODUCT_ID, "c1.1.n.m", "ab" * 32), ec.ECDSA(hashes.SHA256()))


def test_secret_signature_is_keyed_with_secret_hash():
    message = proof_message(PRODUCT_ID, "c", "ab" * 32)
    expected = hmac.new(hashlib.sha256(b"s3").digest(), message, hashlib.sha256).digest()

    assert base64.b64decode(sign_with_secret(b"s3", PRODUCT_ID, "c", "ab" * 32)) == expected


def test_proof_message_matches_the_server():
    from provisioning.services.device_proof import proof_message as server_message

    assert proof_message(PRODUCT_ID, "c1.2.n.m", "ab" * 32) == server_message(PRODUCT_ID, "c1.2.n.m", "ab" * 32)


def test_key_hash_matches_the_server():
    from provisioning.services.device_proof import public_key_sha256

    key = ec.generate_private_key(ec.SECP256R1())

    assert key_sha256(key.public_key()) == public_key_sha256(key.public_key())


def test_stale_lookup_proof_sends_agent_back_to_lookup(pki, tmp_path):
    import asyncio

    from ec_client.agent import run_agent
    from ec_client.state import AgentState, save_state
    from tests.ec_client.servers import FakeZtsp, fast_options, make_device

    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            make_device(folder, ztsp)
            # As after a renewal replaced the key the lookup proof named.
            save_state(folder, AgentState(phase="looked_up", director_url=ztsp.director_url,
                                          tenant_access_key="tenant-key", lookup_proof_stale=True))
            result = await run_agent(folder, fast_options(ztsp))
            return ztsp, result

    ztsp, result = asyncio.run(scenario())

    assert result.phase == "tunnel_up", result.error
    assert [call[0] for call in ztsp.calls if call[0] in ("lookup", "onboard")][:2] == ["lookup", "onboard"]
