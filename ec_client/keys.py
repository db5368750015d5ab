"""The Edge Controller's key pair, CSR and the checks on the certificate it receives.

The private key is generated once into ``key.pem`` (mode 0600) and reused
across restarts, until a certificate renewal replaces it with a new key. It
never leaves the device: only the CSR is sent.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ec_client.state import CSR_FILE, KEY_FILE, atomic_write

logger = logging.getLogger(__name__)

KEY_TYPES = ("ec", "rsa2048", "rsa3072")

# Accepted difference between the device clock and the CA clock when checking
# notBefore, because a freshly issued certificate starts "now" on the CA's clock.
CLOCK_SKEW = timedelta(minutes=5)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class CertificateRejected(Exception):
    """The issued certificate or its chain failed a check, named in the message."""


def generate_key(key_type: str) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "rsa3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ValueError(f"invalid key type {key_type!r}: expected one of {', '.join(KEY_TYPES)}")


def private_key_pem(key: PrivateKey) -> bytes:
    """Return ``key`` as unencrypted PKCS#8 PEM, the format of ``key.pem``."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def create_key(state_dir: Path, key_type: str) -> PrivateKey:
    """Generate a ``key_type`` key, store it in ``key.pem`` in place of any old key, and return it."""
    key = generate_key(key_type)
    atomic_write(state_dir / KEY_FILE, private_key_pem(key), mode=0o600)
    return key


def load_or_create_key(state_dir: Path, key_type: str = "ec") -> tuple[PrivateKey, bool]:
    """Load ``key.pem`` or generate a ``key_type`` key into it.

    Returns the key and whether it was created now. An existing key is kept even
    if its type differs from ``key_type``, because the device identity must not
    change across restarts. Raises ValueError if ``key.pem`` cannot be parsed.
    Deleting the file makes the next start generate a new key.
    """
    path = state_dir / KEY_FILE
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        return create_key(state_dir, key_type), True

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise ValueError(f"invalid private key in {path}: {error}; delete the file to generate a new key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"unsupported key type {type(key).__name__} in {path}: use EC or RSA")
    return key, False


def describe_key(key: PrivateKey) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"EC {key.curve.name}"
    return f"RSA {key.key_size}"


def _public_key_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _common_names(name: x509.Name) -> list[str]:
    return [str(attribute.value) for attribute in name.get_attributes_for_oid(NameOID.COMMON_NAME)]


def load_or_create_csr(state_dir: Path, key: PrivateKey, product_id: str) -> str:
    """Return the PEM CSR from ``csr.pem``, creating it if missing or stale.

    Reusing the stored CSR keeps retries byte-identical, which the Director needs
    to return the same onboarding request. A CSR for another key or Product ID
    is replaced. The subject is ``CN=<product_id>`` only, because the server
    sets the SANs.
    """
    path = state_dir / CSR_FILE
    try:
        pem = path.read_bytes()
        csr = x509.load_pem_x509_csr(pem)
    except (FileNotFoundError, ValueError):
        return create_csr(state_dir, key, product_id)
    if (
        _public_key_der(csr.public_key()) == _public_key_der(key.public_key())
        and _common_names(csr.subject) == [common_name_for(product_id)]
        and csr.is_signature_valid
    ):
        return pem.decode()
    return create_csr(state_dir, key, product_id)


def common_name_for(product_id: str) -> str:
    """Return the subject CN the Director expects: the Product ID, or its UUID part past 64 characters.

    The same rule as the server's pki.crypto.common_name_for (RFC 5280 limits
    a commonName to 64 characters); this package does not import the server.
    """
    return product_id if len(product_id) <= 64 else product_id.rpartition(":")[2]


def build_csr(key: PrivateKey, product_id: str) -> str:
    """Return a PEM CSR signed by ``key`` whose subject is ``CN=<product_id>`` only."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name_for(product_id))])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def create_csr(state_dir: Path, key: PrivateKey, product_id: str) -> str:
    """Build a new CSR for ``product_id``, store it in ``csr.pem`` and return its PEM."""
    pem = build_csr(key, product_id)
    atomic_write(state_dir / CSR_FILE, pem)
    return pem


@dataclass(frozen=True)
class VerifiedCertificate:
    """A leaf certificate that passed :func:`verify_certificate`, with its chain."""

    leaf: x509.Certificate
    chain: list[x509.Certificate]

    @property
    def serial_hex(self) -> str:
        return format(self.leaf.serial_number, "x")

    @property
    def not_after(self) -> datetime:
        return self.leaf.not_valid_after_utc


def verify_certificate(
    certificate_pem: str | bytes,
    ca_chain_pem: str | bytes,
    key: PrivateKey,
    product_id: str,
    now: datetime | None = None,
) -> VerifiedCertificate:
    """Check an issued certificate and its CA chain, and raise CertificateRejected on failure.

    The chain is the issuing CA, then the root CA. The checks:

    - the leaf's public key is the public key of ``key``;
    - the leaf's subject CN is exactly ``product_id``;
    - each certificate is signed by the next one, and every issuer is a CA;
    - all certificates are valid at ``now`` (notBefore allows CLOCK_SKEW);
    - the last certificate is self-signed.
    """
    if isinstance(certificate_pem, str):
        certificate_pem = certificate_pem.encode()
    if isinstance(ca_chain_pem, str):
        ca_chain_pem = ca_chain_pem.encode()
    now = now or datetime.now(UTC)

    try:
        leaf = x509.load_pem_x509_certificate(certificate_pem)
    except ValueError as error:
        raise CertificateRejected(f"invalid certificate PEM: {error}") from None
    try:
        chain = x509.load_pem_x509_certificates(ca_chain_pem)
    except ValueError as error:
        raise CertificateRejected(f"invalid CA chain PEM: {error}") from None
    if not chain:
        raise CertificateRejected("the CA chain is empty: expected the issuing CA and the root CA")

    if _public_key_der(leaf.public_key()) != _public_key_der(key.public_key()):
        raise CertificateRejected(
            f"the certificate's public key does not match key.pem (serial {leaf.serial_number:x})"
        )
    common_names = _common_names(leaf.subject)
    if common_names != [common_name_for(product_id)]:
        raise CertificateRejected(
            f"the certificate subject CN is {common_names!r}, expected [{common_name_for(product_id)!r}]"
        )

    path = [leaf, *chain]
    for certificate in path:
        _check_validity(certificate, now)
    for child, issuer in itertools.pairwise(path):
        _check_issued_by(child, issuer)
    root = path[-1]
    if root.issuer != root.subject:
        raise CertificateRejected(
            f"the last certificate of the CA chain ({root.subject.rfc4514_string()}) "
            "is not self-signed: expected the root CA last"
        )
    _check_issued_by(root, root)
    return VerifiedCertificate(leaf=leaf, chain=chain)


def _check_validity(certificate: x509.Certificate, now: datetime) -> None:
    subject = certificate.subject.rfc4514_string()
    if now + CLOCK_SKEW < certificate.not_valid_before_utc:
        raise CertificateRejected(
            f"certificate {subject} is not valid before {certificate.not_valid_before_utc} "
            f"(device time {now:%Y-%m-%dT%H:%M:%SZ}): check the device clock"
        )
    if now > certificate.not_valid_after_utc:
        raise CertificateRejected(f"certificate {subject} expired at {certificate.not_valid_after_utc}")


def _check_issued_by(child: x509.Certificate, issuer: x509.Certificate) -> None:
    child_subject = child.subject.rfc4514_string()
    issuer_subject = issuer.subject.rfc4514_string()
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CertificateRejected(
            f"certificate {issuer_subject} signs {child_subject} but is not a CA (basicConstraints cA is not true)"
        )
    try:
        # Checks the issuer name and the signature with the issuer's public key.
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature) as error:
        raise CertificateRejected(
            f"certificate {child_subject} is not issued by {issuer_subject}: {error or type(error).__name__}"
        ) from None
