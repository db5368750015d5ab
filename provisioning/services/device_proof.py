"""Proof of possession of a per-device credential at the ZTP lookup.

When the vendor imported a credential for a product (a public key, or the
SHA-256 of a secret burnt into the device), the lookup returns the tenant
access key only to a caller that proves it has the credential. A leaked
provisioning access key and a guessed or cloned Product ID are then not enough.

The exchange costs one extra round trip and no database write:

1. The EC looks up without ``proof``. The server answers 401
   ``device_proof_required`` with a ``challenge``: a stateless token that
   names the Product ID, expires after :data:`CHALLENGE_TTL_SECONDS` and
   carries a server MAC, so nothing is stored per challenge.
2. The EC signs :func:`proof_message` (the Product ID, the challenge and
   the SHA-256 of the public key it will put in its CSR) and looks up again
   with ``proof = {"challenge", "key_sha256", "signature"}``:
   - ``public_key``: ECDSA with SHA-256 (DER signature), RSA PKCS#1 v1.5
     with SHA-256, or Ed25519, base64;
   - ``secret_sha256``: HMAC-SHA256 keyed with the 32 raw bytes of
     SHA-256(secret), base64. The stored hash therefore works as the key: a
     copy of the product table lets its reader answer challenges, which a
     public key does not (docs/security.md).
3. Each challenge is accepted once (a cache entry per nonce), so a captured
   proof cannot be replayed.

A verified lookup returns a ``lookup_proof`` token, signed with the
deployment's secret key, naming the Product ID and that key hash. The EC
hands it to the Director with its onboard request, and the Director counts
the request as backed by the device credential only when its CSR carries
that very key (:func:`read_lookup_proof`), so a copied token does not vouch
for another key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from django.core import signing
from django.core.cache import cache
from django.utils.crypto import salted_hmac

from provisioning.models import CredentialType, Product

# A challenge is valid this long, in seconds: long enough for a slow device
# to sign with an RSA key on a busy CPU, short enough that a leaked one is
# soon useless.
CHALLENGE_TTL_SECONDS = 120
# Lifetime, in seconds, of a lookup proof token at the Director's onboard API.
# An EC onboards right after its lookup, and one that waits longer looks up
# again before a new request.
LOOKUP_PROOF_MAX_AGE_SECONDS = 24 * 3600
# Maximum signature length, as base64 text (an RSA 4096 signature is 684 characters).
MAX_SIGNATURE_CHARS = 1024
MAX_CHALLENGE_CHARS = 200

KEY_SHA256_RE = re.compile(r"[0-9a-f]{64}")

_CHALLENGE_VERSION = "c1"
_CHALLENGE_SALT = "ztsp.device-proof.challenge"
_LOOKUP_PROOF_SALT = "ztsp.device-proof.lookup"
_USED_NONCE_PREFIX = "ztsp:device-proof:used:"


class DeviceProofFailed(Exception):
    """The lookup needs a (better) proof; carries the API code, detail and a fresh challenge."""

    def __init__(self, code: str, detail: str, challenge: str):
        self.code = code
        self.detail = detail
        self.challenge = challenge
        super().__init__(detail)


@dataclass(frozen=True)
class LookupProof:
    """The content of a lookup proof token: the product and how it proved possession."""

    product_id: str
    method: str
    # Hex SHA-256 of the DER SubjectPublicKeyInfo of the key the EC enrolls.
    key_sha256: str


def requires_proof(product: Product) -> bool:
    return bool(product.credential_type and product.credential)


def proof_message(product_id: str, challenge: str, key_sha256: str) -> bytes:
    """Build the bytes the EC signs.

    The Product ID stops a proof for one product serving another, and the key
    hash ties the proof to the key the EC will enroll.
    """
    return f"ztsp-lookup-proof/v1\n{product_id}\n{challenge}\n{key_sha256}".encode()


def issue_challenge(product_id: str, *, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + CHALLENGE_TTL_SECONDS)
    nonce = secrets.token_urlsafe(16)
    mac = _challenge_mac(product_id, expires, nonce)
    return f"{_CHALLENGE_VERSION}.{expires}.{nonce}.{mac}"


def _challenge_mac(product_id: str, expires: int, nonce: str) -> str:
    digest = salted_hmac(_CHALLENGE_SALT, f"{product_id}|{expires}|{nonce}", algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def verify_proof(product: Product, proof, *, now: float | None = None) -> LookupProof:
    """Check ``proof`` (the lookup body's ``proof``) for ``product``; return what it proved.

    Raises :class:`DeviceProofFailed` with a fresh challenge when the proof
    is missing, malformed, expired, already used or wrong.
    """
    product_id = product.product_id
    if proof is None:
        raise _failed("device_proof_required",
                      f"Product ID {product_id} has a device credential; sign the challenge and send it as proof.",
                      product_id)
    if not isinstance(proof, dict) or not all(isinstance(proof.get(name), str)
                                              for name in ("challenge", "key_sha256", "signature")):
        raise _failed("device_proof_invalid", "proof must be an object with the strings challenge, key_sha256 "
                      "and signature; sign the new challenge.", product_id)
    challenge, signature_text = proof["challenge"], proof["signature"]
    key_sha256 = proof["key_sha256"].lower()
    if not KEY_SHA256_RE.fullmatch(key_sha256):
        raise _failed("device_proof_invalid", "proof key_sha256 must be 64 hexadecimal digits, the SHA-256 of the "
                      "DER public key the CSR will carry; sign the new challenge.", product_id)
    if len(challenge) > MAX_CHALLENGE_CHARS or len(signature_text) > MAX_SIGNATURE_CHARS:
        raise _failed("device_proof_invalid", "proof challenge or signature is too long; sign the new challenge.",
                      product_id)

    nonce = _check_challenge(product_id, challenge, now)
    try:
        signature = base64.b64decode(signature_text, validate=True)
    except (binascii.Error, ValueError):
        raise _failed("device_proof_invalid", "proof signature is not base64; sign the new challenge.",
                      product_id) from None
    if not _signature_matches(product, proof_message(product_id, challenge, key_sha256), signature):
        raise _failed("device_proof_invalid",
                      f"The proof signature does not match the credential imported for Product ID {product_id}.",
                      product_id)
    # Spent only once the signature is right, so a forger cannot burn the
    # real device's challenge. cache.add is atomic: of two concurrent uses
    # of one challenge, one wins.
    if not cache.add(_USED_NONCE_PREFIX + nonce, 1, timeout=CHALLENGE_TTL_SECONDS + 5):
        raise _failed("device_proof_replayed", "This challenge was already used; sign the new challenge.",
                      product_id)
    return LookupProof(product_id, product.credential_type, key_sha256)


def _check_challenge(product_id: str, challenge: str, now: float | None) -> str:
    parts = challenge.split(".")
    if len(parts) != 4 or parts[0] != _CHALLENGE_VERSION or not parts[1].isdigit():
        raise _failed("device_proof_invalid", "proof challenge is malformed; sign the new challenge.", product_id)
    _version, expires_text, nonce, mac = parts
    expires = int(expires_text)
    if not hmac.compare_digest(mac, _challenge_mac(product_id, expires, nonce)):
        raise _failed("device_proof_invalid",
                      f"proof challenge was not issued by this server for Product ID {product_id}, or was altered; "
                      "sign the new challenge.", product_id)
    if expires < (now if now is not None else time.time()):
        raise _failed("device_proof_expired",
                      f"proof challenge expired (challenges last {CHALLENGE_TTL_SECONDS} s); sign the new challenge.",
                      product_id)
    return nonce


def _signature_matches(product: Product, message: bytes, signature: bytes) -> bool:
    if product.credential_type == CredentialType.SECRET_SHA256:
        key = bytes.fromhex(product.credential)
        return hmac.compare_digest(hmac.new(key, message, hashlib.sha256).digest(), signature)
    try:
        public_key = load_pem_public_key(product.credential.encode())
    except (ValueError, UnsupportedAlgorithm):
        # The import validated the key, so this means a corrupted row.
        return False
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, message)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _failed(code: str, detail: str, product_id: str) -> DeviceProofFailed:
    return DeviceProofFailed(code, detail, issue_challenge(product_id))


def issue_lookup_proof(proof: LookupProof) -> str:
    """Sign a token for the Director: this lookup proved possession of the device credential for this key."""
    return signing.dumps({"p": proof.product_id, "m": proof.method, "k": proof.key_sha256}, salt=_LOOKUP_PROOF_SALT)


def read_lookup_proof(token, product_id: str) -> LookupProof | None:
    """Return the product and method of a valid, unexpired token for ``product_id``, else None."""
    if not isinstance(token, str) or not token or len(token) > 500:
        return None
    try:
        data = signing.loads(token, salt=_LOOKUP_PROOF_SALT, max_age=LOOKUP_PROOF_MAX_AGE_SECONDS)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("p") != product_id or not isinstance(data.get("m"), str) \
            or not isinstance(data.get("k"), str):
        return None
    return LookupProof(product_id, data["m"], data["k"])


def public_key_sha256(public_key) -> str:
    """Return the hex SHA-256 of a public key's DER SubjectPublicKeyInfo, as ``key_sha256`` names it."""
    der = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()
