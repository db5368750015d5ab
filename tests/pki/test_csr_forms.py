"""The PEM spellings of a CSR that firmware sends are all accepted."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pki import crypto
from pki.crypto import CSRError

PRODUCT_ID = "EC100:7c9e6679-7425-40de-944b-e07fc1f90ae7"


@pytest.fixture(scope="module")
def der() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PRODUCT_ID)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.DER)


def _pem(der: bytes, *, label: str = "CERTIFICATE REQUEST", width: int = 64, newline: str = "\n") -> str:
    body = base64.b64encode(der).decode()
    lines = [body[index:index + width] for index in range(0, len(body), width)]
    return newline.join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""])


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda der: _pem(der, newline="\r\n"), id="crlf"),
        pytest.param(lambda der: _pem(der, label="NEW CERTIFICATE REQUEST"), id="new-label"),
        pytest.param(lambda der: _pem(der, width=10_000), id="base64-on-one-line"),
        pytest.param(lambda der: "\n\n  " + _pem(der) + "\n\n", id="surrounding-blank-lines"),
        pytest.param(lambda der: _pem(der, width=40), id="short-lines"),
    ],
)
def test_validate_csr_accepts_pem_spelling(der, variant):
    csr = crypto.validate_csr(variant(der), PRODUCT_ID)

    assert csr.public_bytes(serialization.Encoding.DER) == der


def test_validate_csr_rejects_missing_end_line(der):
    text = _pem(der).replace("-----END CERTIFICATE REQUEST-----", "")

    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(text, PRODUCT_ID)

    assert caught.value.code == "csr_malformed"


def test_validate_csr_rejects_mismatched_labels(der):
    text = _pem(der).replace("-----END CERTIFICATE REQUEST-----", "-----END NEW CERTIFICATE REQUEST-----")

    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(text, PRODUCT_ID)

    assert caught.value.code == "csr_malformed"


def test_validate_csr_rejects_bad_base64(der):
    text = _pem(der).replace(base64.b64encode(der).decode()[:8], "!!!!!!!!", 1)

    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(text, PRODUCT_ID)

    assert caught.value.code == "csr_malformed"
