"""Access keys, API tokens and secrets kept at rest.

Keys we only need to check (provisioning access keys, tenant access keys at
the Director, MSP API tokens) are stored as an HMAC-SHA256 under
``ZTSP_HASH_KEY`` and compared in constant time. A key has the shape
``<prefix>_<id>_<secret>``. The prefix names what the key is for, so a leaked
key is recognisable in logs or a repository scan. The id is stored in clear to
find the row without a scan.

Secrets we must give back later (the tenant access key that the ZTP lookup
returns, CA private keys) are encrypted with Fernet under ``ZTSP_DATA_KEYS``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

KEY_ID_BYTES = 6
KEY_SECRET_BYTES = 32


@dataclass(frozen=True)
class NewKey:
    """A freshly made key: ``plaintext`` is shown once and never stored."""

    plaintext: str
    key_id: str
    key_hash: str


def hash_secret(value: str) -> str:
    return hmac.new(settings.ZTSP_HASH_KEY.encode(), value.encode(), hashlib.sha256).hexdigest()


def make_key(prefix: str) -> NewKey:
    key_id = secrets.token_hex(KEY_ID_BYTES)
    plaintext = f"{prefix}_{key_id}_{secrets.token_urlsafe(KEY_SECRET_BYTES)}"
    return NewKey(plaintext=plaintext, key_id=key_id, key_hash=hash_secret(plaintext))


def split_key(prefix: str, presented: str) -> str | None:
    """Return the key id of ``presented`` when it has our shape for ``prefix``, else None."""
    if not presented.startswith(prefix + "_"):
        return None
    key_id, _, secret = presented[len(prefix) + 1 :].partition("_")
    if len(key_id) != KEY_ID_BYTES * 2 or not secret:
        return None
    if any(char not in "0123456789abcdef" for char in key_id):
        return None
    return key_id


def key_matches(presented: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(presented), stored_hash)


def derive_token(purpose: str, value: str, *, prefix: str) -> str:
    """Return a token bound to ``value``: the same inputs always give the same token.

    Used for poll tokens, so an EC that repeats its onboard request gets the
    token it was already given, while nothing secret is stored per request.
    """
    digest = hmac.new(
        settings.ZTSP_HASH_KEY.encode(), f"{purpose}:{value}".encode(), hashlib.sha256
    ).hexdigest()
    return f"{prefix}_{digest}"


def token_matches(presented: str, purpose: str, value: str, *, prefix: str) -> bool:
    return hmac.compare_digest(presented.encode(), derive_token(purpose, value, prefix=prefix).encode())


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in settings.ZTSP_DATA_KEYS])


def encrypt(plaintext: bytes) -> str:
    return _fernet().encrypt(plaintext).decode()


def decrypt(ciphertext: str) -> bytes:
    """Decrypt a value written by :func:`encrypt`.

    Raises ``InvalidToken`` when no configured data key opens it, which means
    the key that encrypted it was removed from ``ZTSP_DATA_KEYS``.
    """
    return _fernet().decrypt(ciphertext.encode())


def rotate(ciphertext: str) -> str:
    """Re-encrypt a value under the first data key in ``ZTSP_DATA_KEYS``.

    Raises ``InvalidToken`` when no configured data key opens it.
    """
    return _fernet().rotate(ciphertext.encode()).decode()


__all__ = [
    "InvalidToken",
    "NewKey",
    "decrypt",
    "derive_token",
    "encrypt",
    "hash_secret",
    "key_matches",
    "make_key",
    "rotate",
    "split_key",
    "token_matches",
]
