"""Test data made through the real services, plus key and CSR helpers."""

from __future__ import annotations

import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from audit.services import Actor

VENDOR = Actor.system("test-vendor")


def new_product_id(model: str = "EC100") -> str:
    return f"{model}:{uuid.uuid4()}"


def make_key(kind: str = "ec"):
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "rsa1024":
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)
    if kind == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(kind)


def make_csr(common_name: str, key=None) -> tuple[str, object]:
    """Return (CSR PEM, private key) with ``common_name`` as the only subject attribute."""
    key = key or make_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def provision_products(msp, registration, count: int = 1, *, model: str = "EC100") -> list[str]:
    """Import, allocate, claim and map ``count`` new products; return their Product IDs."""
    import io

    from msp.services.products import allocate_products, claim_products, map_products_to_tenant, numbered
    from provisioning.services.importing import import_products

    product_ids = [new_product_id(model) for _ in range(count)]
    import_products(io.BytesIO("\n".join(product_ids).encode()), actor=VENDOR)
    allocate_products(msp, numbered(product_ids), actor=VENDOR)
    claim_products(msp, numbered(product_ids), actor=VENDOR)
    if registration is not None:
        map_products_to_tenant(msp, registration, numbered(product_ids), actor=VENDOR)
    return product_ids
