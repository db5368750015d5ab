"""A corpus of broken CSRs for one Product ID, each with the error code it must get.

Every CSR is built for the Product ID it is submitted with, so the only fault
is the one named. Keys are made once per test run because RSA and DSA key
generation is slow.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from tests.onboarding.helpers import tamper_signature

# DER of the OIDs that the byte-level cases replace (RFC 5480 and RFC 5758).
P256_CURVE_OID = bytes.fromhex("06082a8648ce3d030107")
UNKNOWN_CURVE_OID = bytes.fromhex("06082a8648ce3d030163")
EC_PUBLIC_KEY_OID = bytes.fromhex("06072a8648ce3d0201")
UNKNOWN_KEY_OID = bytes.fromhex("06072a8648ce3d0209")
ECDSA_SHA256_OID = bytes.fromhex("06082a8648ce3d040302")
UNKNOWN_SIGNATURE_OID = bytes.fromhex("06082a8648ce3d040309")


@functools.cache
def key(kind: str):
    """Return a private key of ``kind``, made once per test run."""
    makers = {
        "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "secp256k1": lambda: ec.generate_private_key(ec.SECP256K1()),
        "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
        "brainpool": lambda: ec.generate_private_key(ec.BrainpoolP256R1()),
        "rsa1024": lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
        "rsa2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
        "ed448": ed448.Ed448PrivateKey.generate,
        "dsa": lambda: dsa.generate_private_key(key_size=2048),
    }
    return makers[kind]()


def build_csr(subject: list[tuple], private_key) -> x509.CertificateSigningRequest:
    name = x509.Name([x509.NameAttribute(oid, value) for oid, value in subject])
    algorithm = None if isinstance(private_key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) else hashes.SHA256()
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(private_key, algorithm)


def pem_of(csr: x509.CertificateSigningRequest) -> str:
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def der_of(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.DER)


def pem_from_der(der: bytes) -> str:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


def _replaced(der: bytes, old: bytes, new: bytes) -> bytes:
    assert der.count(old) == 1, f"{old.hex()} occurs {der.count(old)} times"
    return der.replace(old, new)


@dataclass(frozen=True)
class BrokenCsr:
    """One broken CSR: its PEM text (what ``/api/v1/onboard`` takes) and the code it must get."""

    name: str
    pem: str
    code: str


def valid_pem(product_id: str, kind: str = "p256") -> str:
    return pem_of(build_csr([(NameOID.COMMON_NAME, product_id)], key(kind)))


def framed_pems(product_id: str) -> dict[str, str]:
    """Return a valid CSR for ``product_id`` with text around its PEM block, which RFC 7468 section 2 allows."""
    pem = valid_pem(product_id)
    return {
        "text_after": pem + "; rm -rf /\n",
        "text_before": "<script>alert(1)</script>\nSubject: " + product_id + "\n" + pem,
        "crlf_and_blank_lines": "\r\n\r\n" + pem.replace("\n", "\r\n") + "\r\n\r\n",
    }


def broken_csrs(product_id: str) -> list[BrokenCsr]:
    """Return every broken form of a CSR for ``product_id``."""
    cn = [(NameOID.COMMON_NAME, product_id)]
    good = build_csr(cn, key("p256"))
    good_pem = pem_of(good)
    good_der = der_of(good)
    other = valid_pem("EC100:00000000-0000-4000-8000-000000000000")
    half = len(good_pem) // 2
    return [
        BrokenCsr("not_pem", "this is not a certificate request", "csr_malformed"),
        BrokenCsr("base64_der_without_armor", base64.b64encode(good_der).decode(), "csr_malformed"),
        BrokenCsr("truncated_pem", good_pem[:half], "csr_malformed"),
        BrokenCsr("truncated_base64", good_pem[:half] + "\n-----END CERTIFICATE REQUEST-----\n", "csr_malformed"),
        BrokenCsr("missing_end_line", good_pem.replace("-----END CERTIFICATE REQUEST-----", ""), "csr_malformed"),
        BrokenCsr("invalid_base64", good_pem.replace(good_pem[40:44], "!!!!"), "csr_malformed"),
        BrokenCsr("base64_of_garbage", pem_from_der(b"\x30\x03\x02\x01\x00"), "csr_malformed"),
        BrokenCsr("certificate_label", good_pem.replace("CERTIFICATE REQUEST", "CERTIFICATE"), "csr_malformed"),
        BrokenCsr("private_key_label", good_pem.replace("CERTIFICATE REQUEST", "PRIVATE KEY"), "csr_malformed"),
        BrokenCsr("non_ascii", good_pem.replace("-----END", "é-----END"), "csr_malformed"),
        BrokenCsr("two_csrs", good_pem + other, "csr_malformed"),
        BrokenCsr("two_copies", good_pem + good_pem, "csr_malformed"),
        BrokenCsr("bad_signature", tamper_signature(good_pem), "csr_bad_signature"),
        BrokenCsr("other_product_id", other, "csr_subject_mismatch"),
        BrokenCsr("lower_case_product_id", valid_pem(product_id.lower()), "csr_subject_mismatch"),
        BrokenCsr("no_common_name", pem_of(build_csr([(NameOID.ORGANIZATION_NAME, product_id)], key("p256"))),
                  "csr_subject_mismatch"),
        BrokenCsr("empty_subject", pem_of(build_csr([], key("p256"))), "csr_subject_mismatch"),
        BrokenCsr("two_common_names", pem_of(build_csr(cn + cn, key("p256"))), "csr_subject_mismatch"),
        BrokenCsr("rsa_1024", valid_pem(product_id, "rsa1024"), "csr_weak_key"),
        BrokenCsr("curve_secp256k1", valid_pem(product_id, "secp256k1"), "csr_unsupported_key"),
        BrokenCsr("curve_p521", valid_pem(product_id, "p521"), "csr_unsupported_key"),
        BrokenCsr("curve_brainpool", valid_pem(product_id, "brainpool"), "csr_unsupported_key"),
        BrokenCsr("unknown_curve_oid", pem_from_der(_replaced(good_der, P256_CURVE_OID, UNKNOWN_CURVE_OID)),
                  "csr_unsupported_key"),
        BrokenCsr("unknown_key_algorithm", pem_from_der(_replaced(good_der, EC_PUBLIC_KEY_OID, UNKNOWN_KEY_OID)),
                  "csr_unsupported_key"),
        BrokenCsr("unknown_signature_algorithm",
                  pem_from_der(_replaced(good_der, ECDSA_SHA256_OID, UNKNOWN_SIGNATURE_OID)), "csr_unsupported_key"),
        BrokenCsr("ed25519", valid_pem(product_id, "ed25519"), "csr_unsupported_key"),
        BrokenCsr("ed448", valid_pem(product_id, "ed448"), "csr_unsupported_key"),
        BrokenCsr("dsa", valid_pem(product_id, "dsa"), "csr_unsupported_key"),
    ]
