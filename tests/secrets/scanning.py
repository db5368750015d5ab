"""Secrets collected during a test and the search for them, in clear and in common encodings.

A finding names the kind of secret, the encoding and where it was found, and
never the secret itself, so a failing test does not leak what it looks for.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# Shorter encodings could match ordinary text by chance.
MIN_NEEDLE_CHARS = 16


@dataclass(frozen=True)
class Needle:
    """One searchable form of a secret: ``encoding`` names the form, ``text`` is what is searched for."""

    kind: str
    encoding: str
    # Hidden from repr, so a failing test's traceback does not print the secret.
    text: str = field(repr=False)
    # Hex digits may be printed in either case.
    any_case: bool = False


def _base64_forms(data: bytes) -> dict[str, str]:
    standard = base64.b64encode(data).decode()
    urlsafe = base64.urlsafe_b64encode(data).decode()
    return {"base64": standard, "base64 unpadded": standard.rstrip("="), "base64url": urlsafe.rstrip("=")}


def text_needles(kind: str, value: str) -> list[Needle]:
    """Return the forms of a secret string: clear, base64, hex and URL-encoded."""
    forms = {"clear": value, **_base64_forms(value.encode()), "url-encoded": quote(value, safe=""),
             "form-encoded": quote_plus(value)}
    needles = [Needle(kind, encoding, text) for encoding, text in forms.items()]
    needles.append(Needle(kind, "hex", binascii.hexlify(value.encode()).decode(), any_case=True))
    return needles


def bytes_needles(kind: str, data: bytes) -> list[Needle]:
    """Return the forms of secret bytes (a key in DER, a raw key): base64 and hex."""
    needles = [Needle(kind, encoding, text) for encoding, text in _base64_forms(data).items()]
    needles.append(Needle(kind, "hex", data.hex(), any_case=True))
    return needles


def private_key_needles(kind: str, key) -> list[Needle]:
    """Return the forms of a private key: every full line of its PEM bodies, its DER and its private number."""
    needles: list[Needle] = []
    public_der = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    for private_format in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        der = key.private_bytes(serialization.Encoding.DER, private_format, serialization.NoEncryption())
        needles.extend(bytes_needles(kind, der))
        pem = key.private_bytes(serialization.Encoding.PEM, private_format, serialization.NoEncryption()).decode()
        body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
        for index, line in enumerate(body):
            # Only full 64-character lines, and none made only of public key bytes: those
            # also appear, by chance of alignment, in the certificate's PEM.
            if len(line) == 64 and base64.b64decode(line) not in public_der:
                needles.append(Needle(kind, f"PEM line {index + 1}", line))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        private_value = key.private_numbers().private_value
        size = (key.curve.key_size + 7) // 8
        needles.extend(bytes_needles(f"{kind} (private number)", private_value.to_bytes(size, "big")))
    elif isinstance(key, rsa.RSAPrivateKey):
        exponent = key.private_numbers().d
        needles.extend(bytes_needles(f"{kind} (private exponent)",
                                     exponent.to_bytes((exponent.bit_length() + 7) // 8, "big")))
    return needles


@dataclass
class SecretRegistry:
    """Every secret a test made or used, as needles to search for."""

    needles: list[Needle] = field(default_factory=list, repr=False)
    kinds: set[str] = field(default_factory=set)

    def add_text(self, kind: str, value: str) -> None:
        if not value:
            raise ValueError(f"empty secret of kind {kind!r}")
        self.kinds.add(kind)
        self.needles.extend(needle for needle in text_needles(kind, value) if len(needle.text) >= MIN_NEEDLE_CHARS)

    def add_bytes(self, kind: str, data: bytes) -> None:
        self.kinds.add(kind)
        self.needles.extend(needle for needle in bytes_needles(kind, data) if len(needle.text) >= MIN_NEEDLE_CHARS)

    def add_private_key(self, kind: str, key) -> None:
        self.kinds.add(kind)
        self.needles.extend(needle for needle in private_key_needles(kind, key)
                            if len(needle.text) >= MIN_NEEDLE_CHARS)

    def add_pem_private_key(self, kind: str, pem: bytes) -> None:
        self.add_private_key(kind, serialization.load_pem_private_key(pem, password=None))


def find_secrets(text: str, needles: list[Needle], *, where: str) -> list[str]:
    """Return one line per needle found in ``text``: kind, encoding, ``where`` and line number, never the value."""
    lowered = None
    findings = []
    for needle in needles:
        if needle.any_case:
            lowered = text.lower() if lowered is None else lowered
            haystack, wanted = lowered, needle.text.lower()
        else:
            haystack, wanted = text, needle.text
        position = haystack.find(wanted)
        if position < 0:
            continue
        line = haystack.count("\n", 0, position) + 1
        findings.append(f"{needle.kind} ({needle.encoding}) in {where} line {line}")
    return findings


def find_secrets_in_file(path: Path, needles: list[Needle]) -> list[str]:
    return find_secrets(path.read_text(errors="replace"), needles, where=path.name)
