"""Proof of possession of a per-device credential at the ZTP lookup, and its record at the Director."""

from __future__ import annotations

import hashlib
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django_tenants.utils import schema_context

from ec_client.proof import sign_with_key, sign_with_secret
from msp.services.products import allocate_products, claim_products, numbered
from onboarding.models import OnboardRequest
from onboarding.services import submit_onboard_request
from provisioning.models import CredentialType, Product
from provisioning.services.device_proof import LookupProof, issue_challenge, issue_lookup_proof, public_key_sha256
from tests.factories import VENDOR, make_csr, make_key, provision_products
from tests.provisioning.helpers import csv_bytes, import_csv, post_lookup

SECRET = "factory-secret-of-this-device"
# The hash of the key the EC enrolls, in the lookup tests.
ENROLL_KEY = "ab" * 32


def _public_pem(private_key) -> str:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _give_credential(product_id: str, credential_type: str, credential: str) -> None:
    Product.objects.filter(product_id=product_id).update(credential_type=credential_type, credential=credential)


@pytest.fixture
def device_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def keyed_product(world, device_key) -> str:
    """A product mapped to acme whose vendor imported the device's P-256 public key."""
    product_id = provision_products(world.a.msp, world.a.registration)[0]
    _give_credential(product_id, CredentialType.PUBLIC_KEY, _public_pem(device_key))
    return product_id


def _key_proof(private_key, product_id: str, challenge: str) -> dict:
    return {"challenge": challenge, "key_sha256": ENROLL_KEY,
            "signature": sign_with_key(private_key, product_id, challenge, ENROLL_KEY)}


def _secret_proof(secret: bytes, product_id: str, challenge: str) -> dict:
    return {"challenge": challenge, "key_sha256": ENROLL_KEY,
            "signature": sign_with_secret(secret, product_id, challenge, ENROLL_KEY)}


def _lookup(world, public_client, product_id: str, proof: dict | None = None):
    body = {"product_id": product_id}
    if proof is not None:
        body["proof"] = proof
    return post_lookup(public_client, body, key=world.provisioning_key)


def _challenge(world, public_client, product_id: str) -> str:
    response = _lookup(world, public_client, product_id)
    assert response.status_code == 401, response.content
    return response.json()["challenge"]


def test_lookup_without_proof_returns_challenge_and_no_access_key(world, public_client, keyed_product):
    response = _lookup(world, public_client, keyed_product)

    assert response.status_code == 401, response.content
    body = response.json()
    assert body["code"] == "device_proof_required"
    assert body["challenge"].startswith("c1.")
    assert body["challenge_expires_in"] == 120
    assert "access_key" not in body
    assert world.a.tenant_access_key not in response.content.decode()


def test_lookup_with_signed_challenge_returns_director_and_lookup_proof(world, public_client, keyed_product,
                                                                          device_key):
    challenge = _challenge(world, public_client, keyed_product)

    response = _lookup(world, public_client, keyed_product,
                       _key_proof(device_key, keyed_product, challenge))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["access_key"] == world.a.tenant_access_key
    assert body["lookup_proof"]


@pytest.mark.parametrize("make_key", [
    lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    lambda: ed25519.Ed25519PrivateKey.generate(),
    lambda: ec.generate_private_key(ec.SECP384R1()),
], ids=["rsa2048", "ed25519", "p384"])
def test_lookup_accepts_proof_from_each_key_type(world, public_client, make_key):
    key = make_key()
    product_id = provision_products(world.a.msp, world.a.registration)[0]
    _give_credential(product_id, CredentialType.PUBLIC_KEY, _public_pem(key))
    challenge = _challenge(world, public_client, product_id)

    response = _lookup(world, public_client, product_id,
                       _key_proof(key, product_id, challenge))

    assert response.status_code == 200, response.content


def test_lookup_accepts_hmac_proof_for_secret_hash(world, public_client):
    product_id = provision_products(world.a.msp, world.a.registration)[0]
    _give_credential(product_id, CredentialType.SECRET_SHA256, hashlib.sha256(SECRET.encode()).hexdigest())
    challenge = _challenge(world, public_client, product_id)

    response = _lookup(world, public_client, product_id,
                       _secret_proof(SECRET.encode(), product_id, challenge))

    assert response.status_code == 200, response.content


def test_lookup_rejects_wrong_secret(world, public_client):
    product_id = provision_products(world.a.msp, world.a.registration)[0]
    _give_credential(product_id, CredentialType.SECRET_SHA256, hashlib.sha256(SECRET.encode()).hexdigest())
    challenge = _challenge(world, public_client, product_id)

    response = _lookup(world, public_client, product_id,
                       _secret_proof(b"guess", product_id, challenge))

    assert response.status_code == 401
    assert response.json()["code"] == "device_proof_invalid"


def test_lookup_rejects_signature_by_another_key(world, public_client, keyed_product):
    challenge = _challenge(world, public_client, keyed_product)
    impostor = ec.generate_private_key(ec.SECP256R1())

    response = _lookup(world, public_client, keyed_product,
                       _key_proof(impostor, keyed_product, challenge))

    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "device_proof_invalid"
    assert body["challenge"] != challenge
    assert "access_key" not in body


def test_lookup_rejects_challenge_issued_for_another_product(world, public_client, keyed_product, device_key):
    other = provision_products(world.a.msp, world.a.registration)[0]
    _give_credential(other, CredentialType.PUBLIC_KEY, _public_pem(device_key))
    challenge = _challenge(world, public_client, other)

    response = _lookup(world, public_client, keyed_product,
                       _key_proof(device_key, keyed_product, challenge))

    assert response.status_code == 401
    assert response.json()["code"] == "device_proof_invalid"


def test_lookup_rejects_key_hash_other_than_signed(world, public_client, keyed_product, device_key):
    challenge = _challenge(world, public_client, keyed_product)
    proof = {**_key_proof(device_key, keyed_product, challenge), "key_sha256": "cd" * 32}

    response = _lookup(world, public_client, keyed_product, proof)

    assert response.status_code == 401
    assert response.json()["code"] == "device_proof_invalid"


def test_lookup_rejects_malformed_key_hash(world, public_client, keyed_product, device_key):
    challenge = _challenge(world, public_client, keyed_product)
    proof = {**_key_proof(device_key, keyed_product, challenge), "key_sha256": "zz" * 32}

    response = _lookup(world, public_client, keyed_product, proof)

    assert response.status_code == 401
    assert "64 hexadecimal digits" in response.json()["detail"]


def test_lookup_rejects_expired_challenge(world, public_client, keyed_product, device_key):
    challenge = issue_challenge(keyed_product, now=time.time() - 600)

    response = _lookup(world, public_client, keyed_product,
                       _key_proof(device_key, keyed_product, challenge))

    assert response.status_code == 401
    assert response.json()["code"] == "device_proof_expired"


def test_lookup_rejects_replayed_proof(world, public_client, keyed_product, device_key):
    challenge = _challenge(world, public_client, keyed_product)
    proof = _key_proof(device_key, keyed_product, challenge)
    assert _lookup(world, public_client, keyed_product, proof).status_code == 200

    response = _lookup(world, public_client, keyed_product, proof)

    assert response.status_code == 401
    assert response.json()["code"] == "device_proof_replayed"


def test_lookup_rejects_forged_challenge_mac(world, public_client, keyed_product, device_key):
    version, expires, nonce, _mac = _challenge(world, public_client, keyed_product).split(".")
    forged = f"{version}.{int(expires) + 3600}.{nonce}.AAAA"

    response = _lookup(world, public_client, keyed_product,
                       _key_proof(device_key, keyed_product, forged))

    assert response.status_code == 401
    assert response.json()["code"] == "device_proof_invalid"


@pytest.mark.parametrize(("proof", "code"), [
    ("signed", "invalid"), (["a"], "invalid"), ({"challenge": {"a": 1}, "signature": "x"}, "invalid"),
    ({"challenge": "c1", "key_sha256": ENROLL_KEY}, "required"),
], ids=["string", "list", "object_challenge", "no_signature"])
def test_lookup_malformed_proof_returns_400(world, public_client, keyed_product, proof, code):
    response = _lookup(world, public_client, keyed_product, proof)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == code


def test_lookup_non_base64_signature_returns_401_with_new_challenge(world, public_client, keyed_product):
    challenge = _challenge(world, public_client, keyed_product)

    response = _lookup(world, public_client, keyed_product,
                       {"challenge": challenge, "key_sha256": ENROLL_KEY, "signature": "not base64!"})

    assert response.status_code == 401
    assert response.json()["code"] == "device_proof_invalid"
    assert response.json()["challenge"]


def test_lookup_of_product_without_credential_needs_no_proof(world, public_client):
    product_id = provision_products(world.a.msp, world.a.registration)[0]

    response = _lookup(world, public_client, product_id)

    assert response.status_code == 200, response.content
    assert "lookup_proof" not in response.json()


def test_lookup_of_unmapped_product_with_credential_returns_409_without_challenge(world, public_client, device_key):
    product_id = provision_products(world.a.msp, None)[0]
    _give_credential(product_id, CredentialType.PUBLIC_KEY, _public_pem(device_key))

    response = _lookup(world, public_client, product_id)

    assert response.status_code == 409
    assert "challenge" not in response.json()


def test_failed_proof_is_recorded_in_lookup_history(world, public_client, keyed_product):
    from provisioning.models import LookupEvent

    _lookup(world, public_client, keyed_product)

    assert LookupEvent.objects.filter(product_id=keyed_product, code="device_proof_required").exists()


def test_imported_public_key_is_what_the_lookup_checks(world, public_client, device_key):
    from tests.factories import new_product_id

    product_id = new_product_id()
    pem = _public_pem(device_key).replace("\n", "\\n")
    report = import_csv(csv_bytes("product_id,public_key", f'{product_id},"{pem}"'))
    assert report.inserted == 1, report.summary()
    allocate_products(world.a.msp, numbered([product_id]), actor=VENDOR)
    claim_products(world.a.msp, numbered([product_id]), actor=VENDOR)
    from msp.services.products import map_products_to_tenant

    map_products_to_tenant(world.a.msp, world.a.registration, numbered([product_id]), actor=VENDOR)
    challenge = _challenge(world, public_client, product_id)

    response = _lookup(world, public_client, product_id,
                       _key_proof(device_key, product_id, challenge))

    assert response.status_code == 200, response.content


# --- the Director's record of the proof -----------------------------------------------------


def _token(product_id: str, enroll_key) -> str:
    return issue_lookup_proof(LookupProof(product_id, CredentialType.PUBLIC_KEY,
                                          public_key_sha256(enroll_key.public_key())))


def _submit(world, product_id: str, lookup_proof=None, enroll_key=None) -> OnboardRequest:
    csr_pem, _key = make_csr(product_id, enroll_key)
    with schema_context(world.a.tenant.schema_name):
        result = submit_onboard_request(product_id, csr_pem, {}, source_address="127.0.0.1",
                                        lookup_proof=lookup_proof)
        return OnboardRequest.objects.get(pk=result.request.pk)


def test_onboard_request_with_lookup_proof_is_verified(world, keyed_product):
    enroll_key = make_key()

    onboard_request = _submit(world, keyed_product, _token(keyed_product, enroll_key), enroll_key)

    assert onboard_request.device_proof == OnboardRequest.DeviceProof.VERIFIED


def test_onboard_request_with_lookup_proof_for_another_key_is_flagged_missing(world, keyed_product):
    onboard_request = _submit(world, keyed_product, _token(keyed_product, make_key()), make_key())

    assert onboard_request.device_proof == OnboardRequest.DeviceProof.MISSING


def test_onboard_request_without_lookup_proof_is_flagged_missing(world, keyed_product):
    onboard_request = _submit(world, keyed_product)

    assert onboard_request.device_proof == OnboardRequest.DeviceProof.MISSING


def test_onboard_request_with_another_products_lookup_proof_is_flagged_missing(world, keyed_product):
    other = provision_products(world.a.msp, world.a.registration)[0]

    enroll_key = make_key()

    onboard_request = _submit(world, keyed_product, _token(other, enroll_key), enroll_key)

    assert onboard_request.device_proof == OnboardRequest.DeviceProof.MISSING


def test_onboard_request_with_forged_lookup_proof_is_flagged_missing(world, keyed_product):
    enroll_key = make_key()
    token = _token(keyed_product, enroll_key)

    onboard_request = _submit(world, keyed_product, token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
                              enroll_key)

    assert onboard_request.device_proof == OnboardRequest.DeviceProof.MISSING


def test_onboard_request_for_product_without_credential_is_not_registered(world):
    product_id = provision_products(world.a.msp, world.a.registration)[0]

    onboard_request = _submit(world, product_id)

    assert onboard_request.device_proof == OnboardRequest.DeviceProof.NOT_REGISTERED


def test_director_api_lists_device_proof(world, keyed_product):
    from tests.conftest import client_for
    from tests.onboarding.helpers import basic

    onboard_request = _submit(world, keyed_product)
    client = client_for(world.a.domain)
    client.credentials(**basic(world.a.tenant_admin_username))

    response = client.get("/api/v1/director/onboard-requests?status=pending")

    assert response.status_code == 200, response.content
    listed = {item["request_id"]: item for item in response.json()["results"]}
    assert listed[str(onboard_request.pk)]["device_proof"] == "missing"


def _dashboard_row(world, product_id: str) -> str:
    import re

    from django.test import Client

    client = Client(HTTP_HOST=world.a.domain)
    client.post("/accounts/login/", {"username": world.a.tenant_admin_username,
                                     "password": "correct-horse-battery-staple"})
    html = client.get("/").content.decode()
    rows = re.findall(rf'<tr data-product-id="{re.escape(product_id)}">(.*?)</tr>', html, re.S)
    assert len(rows) == 1, html
    return rows[0]


def test_dashboard_flags_request_without_device_proof(world, keyed_product):
    _submit(world, keyed_product)

    assert "Device credential not proven" in _dashboard_row(world, keyed_product)


def test_dashboard_marks_request_with_device_proof(world, keyed_product):
    enroll_key = make_key()
    _submit(world, keyed_product, _token(keyed_product, enroll_key), enroll_key)

    row = _dashboard_row(world, keyed_product)
    assert "Device credential proven at lookup" in row
    assert "not proven" not in row
