"""The device side of the lookup's proof of possession (see README, "Device credentials").

The Provision Server responds to a lookup for a product with an imported
credential with 401 ``device_proof_required`` and a ``challenge``. The EC
signs the Product ID and the challenge with its credential and looks up
again with ``proof``. The message format is part of the EC contract and must
match ``provisioning.services.device_proof.proof_message``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa


def proof_message(product_id: str, challenge: str, key_sha256: str) -> bytes:
    return f"ztsp-lookup-proof/v1\n{product_id}\n{challenge}\n{key_sha256}".encode()


def key_sha256(public_key) -> str:
    """Return the hex SHA-256 of the DER SubjectPublicKeyInfo: the ``proof.key_sha256`` of the key to enroll."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def sign_with_key(private_key, product_id: str, challenge: str, enroll_key_sha256: str) -> str:
    """Sign with the device credential's private key; return base64, the lookup's ``proof.signature``.

    ECDSA signatures are DER-encoded, as the cryptography package makes them.
    """
    message = proof_message(product_id, challenge, enroll_key_sha256)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        signature = private_key.sign(message, ec.ECDSA(hashes.SHA256()))
    elif isinstance(private_key, rsa.RSAPrivateKey):
        signature = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(private_key, ed25519.Ed25519PrivateKey):
        signature = private_key.sign(message)
    else:
        raise ValueError(f"unsupported device credential key type {type(private_key).__name__}")
    return base64.b64encode(signature).decode()


def sign_with_secret(secret: bytes, product_id: str, challenge: str, enroll_key_sha256: str) -> str:
    """HMAC-SHA256 keyed with SHA-256(secret), the hash the vendor imported; return base64."""
    key = hashlib.sha256(secret).digest()
    message = proof_message(product_id, challenge, enroll_key_sha256)
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
