"""Requests an EST client makes, and the PKCS#7 bodies it gets back."""

from __future__ import annotations

import base64

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from tests.conftest import client_for
from tests.factories import make_csr

CACERTS_URL = "/.well-known/est/cacerts"
SIMPLEENROLL_URL = "/.well-known/est/simpleenroll"
SIMPLEREENROLL_URL = "/.well-known/est/simplereenroll"


def basic_auth(username: str, password: str) -> dict:
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {encoded}"}


def csr_body(common_name: str, key=None) -> tuple[str, str, object]:
    """Return (EST body: base64 DER with line breaks, CSR PEM, private key)."""
    csr_pem, key = make_csr(common_name, key)
    der = x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER)
    return base64.encodebytes(der).decode(), csr_pem, key


def post_simpleenroll(host: str, body: str, *, product_id: str | None = None, access_key: str | None = None,
                      **extra):
    headers = basic_auth(product_id, access_key) if product_id is not None else {}
    return client_for(host).post(SIMPLEENROLL_URL, body, content_type="application/pkcs10", **headers, **extra)


def pkcs7_certificates(response) -> list[x509.Certificate]:
    """Decode a base64 certs-only PKCS#7 response body."""
    return pkcs7.load_der_pkcs7_certificates(base64.b64decode(response.content))
