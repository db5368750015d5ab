"""Tests for pki.crypto: CSR checks, issuance, CRLs, PEM helpers, and interop with
the openssl CLI, Python's ssl module (TLS 1.3 on loopback) and pkilint."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
import socket
import ssl
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki import crypto
from pki.crypto import CSRError

PRODUCT_ID = "EC100:7c9e6679-7425-40de-944b-e07fc1f90ae7"
OTHER_PRODUCT_ID = "EC100:0f8fad5b-d9cb-469f-a165-70867728950e"
CRL_URL = "http://pki.ztsp.test/crl/tenant-a.crl"
GATEWAY_DNS = "gateway.ztsp.test"
UTC = datetime.UTC

# Seconds a loopback TLS handshake may take before the test fails instead of hanging.
TLS_TIMEOUT_SECONDS = 10


# --- helpers ----------------------------------------------------------------------------


def make_csr(
    key,
    subject: x509.Name | None = None,
    *,
    extensions: list[x509.ExtensionType] | None = None,
    algorithm: hashes.HashAlgorithm | None = None,
) -> x509.CertificateSigningRequest:
    """Build a CSR signed by `key`, with CN=PRODUCT_ID unless `subject` is given."""
    if subject is None:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PRODUCT_ID)])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    for extension in extensions or []:
        builder = builder.add_extension(extension, critical=False)
    if algorithm is None and not isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm = hashes.SHA256()
    return builder.sign(key, algorithm)


def csr_pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)


def cn_name(*common_names: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in common_names])


def make_ca(
    key,
    *,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    common_name: str = "Hand-made Test CA",
) -> x509.Certificate:
    """Build a self-signed CA by hand, for cases create_root_ca does not produce."""
    name = cn_name(common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )


def make_leaf(ca_key, ca_cert, subject: x509.Name, alt_names: list[x509.GeneralName] | None):
    """Build a leaf certificate by hand with the given subject and SAN entries."""
    now = datetime.datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if alt_names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(ca_key, hashes.SHA384())


def extension_value(cert, extension_class):
    return cert.extensions.get_extension_for_class(extension_class).value


def is_critical(cert, extension_class) -> bool:
    return cert.extensions.get_extension_for_class(extension_class).critical


def write_pem(directory: Path, name: str, *certs: x509.Certificate) -> Path:
    path = directory / name
    path.write_text("".join(crypto.cert_to_pem(cert) for cert in certs))
    return path


def run_pkilint(tool: str, args: list[str], path: Path) -> list[dict]:
    """Run a pkilint CLI from this interpreter's venv and return ERROR-or-worse findings."""
    executable = Path(sys.executable).parent / tool
    result = subprocess.run(
        [str(executable), "lint", *args, "-s", "ERROR", "-f", "JSON", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stderr == "", f"{tool} wrote to stderr: {result.stderr}"
    findings = json.loads(result.stdout)["results"]
    # The exit code is the number of findings at or above the threshold.
    assert result.returncode == len(findings), result.stdout
    return findings


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root():
    return crypto.create_root_ca("ZTSP Test Root CA", "ZTSP Test", valid_days=3650)


@pytest.fixture(scope="module")
def issuing(root):
    root_key, root_cert = root
    return crypto.create_issuing_ca(
        root_key,
        root_cert,
        "Tenant A Issuing CA",
        "Tenant A",
        valid_days=1825,
        crl_url=CRL_URL,
    )


@pytest.fixture(scope="module")
def device_key():
    return crypto.generate_private_key("ec-p256")


@pytest.fixture(scope="module")
def device_csr(device_key):
    return make_csr(device_key)


@pytest.fixture(scope="module")
def ec_cert(issuing, device_csr):
    ca_key, ca_cert = issuing
    return crypto.issue_ec_certificate(
        ca_key, ca_cert, device_csr, PRODUCT_ID, valid_days=365, crl_url=CRL_URL
    )


@pytest.fixture(scope="module")
def server(root):
    root_key, root_cert = root
    return crypto.issue_server_certificate(
        root_key,
        root_cert,
        dns_names=[GATEWAY_DNS, "tunnel.ztsp.test"],
        ip_addresses=["127.0.0.1", "::1"],
        valid_days=90,
    )


# --- validate_csr: accepted keys --------------------------------------------------------


@pytest.mark.parametrize("kind", ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072"])
def test_validate_csr_accepts_supported_key(kind):
    csr = make_csr(crypto.generate_private_key(kind))

    parsed = crypto.validate_csr(csr_pem(csr), PRODUCT_ID)

    assert parsed.public_bytes(serialization.Encoding.DER) == csr.public_bytes(
        serialization.Encoding.DER
    )


def test_validate_csr_accepts_str(device_csr):
    parsed = crypto.validate_csr(csr_pem(device_csr).decode("ascii"), PRODUCT_ID)

    assert parsed.subject == device_csr.subject


# --- validate_csr: csr_malformed --------------------------------------------------------


def test_validate_csr_rejects_garbage():
    with pytest.raises(CSRError) as caught:
        crypto.validate_csr("hello", PRODUCT_ID)

    assert caught.value.code == "csr_malformed"


def test_validate_csr_rejects_der(device_csr):
    der = device_csr.public_bytes(serialization.Encoding.DER)

    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(der, PRODUCT_ID)

    assert caught.value.code == "csr_malformed"


def test_validate_csr_rejects_bad_base64():
    pem = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"

    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(pem, PRODUCT_ID)

    assert caught.value.code == "csr_malformed"


def test_validate_csr_rejects_certificate_pem(root):
    _, root_cert = root

    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(crypto.cert_to_pem(root_cert), PRODUCT_ID)

    assert caught.value.code == "csr_malformed"
    assert "CERTIFICATE" in caught.value.detail


def test_validate_csr_rejects_two_pem_blocks(device_csr):
    pem = csr_pem(device_csr)

    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(pem + pem, PRODUCT_ID)

    assert caught.value.code == "csr_malformed"
    assert "2 PEM blocks" in caught.value.detail


def test_validate_csr_rejects_oversized(device_key):
    # A correctly signed CSR that is only too big: 600 SAN entries push it past the limit.
    names = [x509.DNSName(f"host-{i:04d}.ztsp.test") for i in range(600)]
    pem = csr_pem(make_csr(device_key, extensions=[x509.SubjectAlternativeName(names)]))
    assert len(pem) > crypto.MAX_CSR_BYTES

    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(pem, PRODUCT_ID)

    assert caught.value.code == "csr_malformed"
    assert str(crypto.MAX_CSR_BYTES) in caught.value.detail


def test_validate_csr_rejects_non_ascii_str(device_csr):
    pem = csr_pem(device_csr).decode("ascii") + "\u00e9"

    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(pem, PRODUCT_ID)

    assert caught.value.code == "csr_malformed"


# --- validate_csr: csr_bad_signature ----------------------------------------------------


def tampered_pem(csr: x509.CertificateSigningRequest) -> str:
    """Flip one bit in the last byte of the DER, which is inside the signature BIT STRING."""
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    body = base64.encodebytes(bytes(der)).decode("ascii")
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


@pytest.mark.parametrize("kind", ["ec-p256", "rsa-2048"])
def test_validate_csr_rejects_tampered_signature(kind):
    pem = tampered_pem(make_csr(crypto.generate_private_key(kind)))

    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(pem, PRODUCT_ID)

    assert caught.value.code == "csr_bad_signature"


def test_validate_csr_checks_signature_before_subject(device_key):
    pem = tampered_pem(make_csr(device_key, cn_name(OTHER_PRODUCT_ID)))

    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(pem, PRODUCT_ID)

    assert caught.value.code == "csr_bad_signature"


# --- validate_csr: csr_subject_mismatch -------------------------------------------------


def test_validate_csr_rejects_missing_cn(device_key):
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme")])

    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(csr_pem(make_csr(device_key, subject)), PRODUCT_ID)

    assert caught.value.code == "csr_subject_mismatch"
    assert PRODUCT_ID in caught.value.detail


def test_validate_csr_rejects_empty_subject(device_key):
    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(csr_pem(make_csr(device_key, x509.Name([]))), PRODUCT_ID)

    assert caught.value.code == "csr_subject_mismatch"


def test_validate_csr_rejects_two_cns(device_key):
    csr = make_csr(device_key, cn_name(PRODUCT_ID, PRODUCT_ID))

    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(csr_pem(csr), PRODUCT_ID)

    assert caught.value.code == "csr_subject_mismatch"


def test_validate_csr_rejects_other_cn(device_key):
    csr = make_csr(device_key, cn_name(OTHER_PRODUCT_ID))

    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(csr_pem(csr), PRODUCT_ID)

    assert caught.value.code == "csr_subject_mismatch"
    assert OTHER_PRODUCT_ID in caught.value.detail
    assert PRODUCT_ID in caught.value.detail


@pytest.mark.parametrize("variant", [PRODUCT_ID.lower(), PRODUCT_ID + " ", " " + PRODUCT_ID])
def test_validate_csr_cn_match_is_exact(device_key, variant):
    csr = make_csr(device_key, cn_name(variant))

    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(csr_pem(csr), PRODUCT_ID)

    assert caught.value.code == "csr_subject_mismatch"


def test_validate_csr_checks_key_before_subject():
    csr = make_csr(rsa.generate_private_key(65537, 1024), cn_name(OTHER_PRODUCT_ID))

    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(csr_pem(csr), PRODUCT_ID)

    assert caught.value.code == "csr_weak_key"


def test_validate_csr_checks_key_before_signature():
    pem = tampered_pem(make_csr(rsa.generate_private_key(65537, 1024)))

    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(pem, PRODUCT_ID)

    assert caught.value.code == "csr_weak_key"


# --- validate_csr: csr_weak_key and csr_unsupported_key ---------------------------------


def test_validate_csr_rejects_rsa_1024():
    csr = make_csr(rsa.generate_private_key(65537, 1024))

    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(csr_pem(csr), PRODUCT_ID)

    assert caught.value.code == "csr_weak_key"
    assert "1024" in caught.value.detail


@pytest.mark.parametrize(
    ("key_factory", "detail_fragment"),
    [
        pytest.param(lambda: rsa.generate_private_key(65537, 4160), "4160", id="rsa-4160"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP521R1()), "secp521r1", id="p521"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP256K1()), "secp256k1", id="k256"),
        pytest.param(ed25519.Ed25519PrivateKey.generate, "Ed25519", id="ed25519"),
        pytest.param(lambda: dsa.generate_private_key(2048), "DSA", id="dsa-2048"),
    ],
)
def test_validate_csr_rejects_unsupported_key(key_factory, detail_fragment):
    csr = make_csr(key_factory())

    with pytest.raises(CSRError) as caught:
        crypto.validate_csr(csr_pem(csr), PRODUCT_ID)

    assert caught.value.code == "csr_unsupported_key"
    assert detail_fragment in caught.value.detail


def test_csr_error_is_value_error():
    error = CSRError("csr_malformed", "CSR is not PEM")

    assert isinstance(error, ValueError)
    assert error.code == "csr_malformed"
    assert error.detail == "CSR is not PEM"
    assert str(error) == "CSR is not PEM"


# --- csr_fingerprint --------------------------------------------------------------------


def test_csr_fingerprint_is_sha256_of_der(device_csr):
    expected = hashlib.sha256(device_csr.public_bytes(serialization.Encoding.DER)).hexdigest()

    assert crypto.csr_fingerprint(device_csr) == expected


def test_csr_fingerprint_stable_across_parses(device_csr):
    from_bytes = crypto.validate_csr(csr_pem(device_csr), PRODUCT_ID)
    from_str = crypto.validate_csr(csr_pem(device_csr).decode("ascii"), PRODUCT_ID)

    assert crypto.csr_fingerprint(from_bytes) == crypto.csr_fingerprint(from_str)


def test_csr_fingerprint_differs_per_csr(device_key, device_csr):
    # ECDSA signatures are randomized, so re-signing the same content gives a new CSR.
    other = make_csr(device_key)

    assert crypto.csr_fingerprint(other) != crypto.csr_fingerprint(device_csr)


# --- generate_private_key ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "key_class", "size"),
    [
        ("ec-p256", ec.EllipticCurvePrivateKey, 256),
        ("ec-p384", ec.EllipticCurvePrivateKey, 384),
        ("rsa-2048", rsa.RSAPrivateKey, 2048),
        ("rsa-3072", rsa.RSAPrivateKey, 3072),
    ],
)
def test_generate_private_key_kind(kind, key_class, size):
    key = crypto.generate_private_key(kind)

    assert isinstance(key, key_class)
    assert key.key_size == size


def test_generate_private_key_defaults_to_p256():
    key = crypto.generate_private_key()

    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"


def test_generate_private_key_rejects_unknown_kind():
    with pytest.raises(ValueError, match="rsa-1024"):
        crypto.generate_private_key("rsa-1024")


# --- create_root_ca ---------------------------------------------------------------------


def test_root_ca_is_self_signed_p384(root):
    key, cert = root

    cert.verify_directly_issued_by(cert)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp384r1"
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA384)


def test_root_ca_subject(root):
    _, cert = root

    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "ZTSP Test Root CA"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "ZTSP Test"
    assert cert.issuer == cert.subject


def test_root_ca_basic_constraints(root):
    _, cert = root
    constraints = extension_value(cert, x509.BasicConstraints)

    assert constraints.ca is True
    assert constraints.path_length in (None, 1)
    assert is_critical(cert, x509.BasicConstraints)


def test_root_ca_key_usage(root):
    _, cert = root
    usage = extension_value(cert, x509.KeyUsage)

    assert usage.key_cert_sign is True
    assert usage.crl_sign is True
    assert usage.digital_signature is False
    assert is_critical(cert, x509.KeyUsage)


def test_root_ca_aki_equals_ski(root):
    _, cert = root
    ski = extension_value(cert, x509.SubjectKeyIdentifier)

    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    assert crypto.authority_key_id_hex(cert) == crypto.key_id_hex(cert)


def test_root_ca_not_before_backdated(root):
    _, cert = root
    now = datetime.datetime.now(UTC)

    assert cert.not_valid_before_utc <= now - datetime.timedelta(minutes=4)
    assert cert.not_valid_before_utc >= now - datetime.timedelta(hours=1)


def test_root_ca_validity_days():
    _, cert = crypto.create_root_ca("Root", "Org", valid_days=30)

    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=30)


def test_root_ca_rejects_zero_days():
    with pytest.raises(ValueError, match="valid_days"):
        crypto.create_root_ca("Root", "Org", valid_days=0)


# --- create_issuing_ca ------------------------------------------------------------------


def test_issuing_ca_signed_by_root(root, issuing):
    _, root_cert = root
    key, cert = issuing

    cert.verify_directly_issued_by(root_cert)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name in ("secp256r1", "secp384r1")
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA384)


def test_issuing_ca_basic_constraints(issuing):
    _, cert = issuing
    constraints = extension_value(cert, x509.BasicConstraints)

    assert constraints.ca is True
    assert constraints.path_length == 0
    assert is_critical(cert, x509.BasicConstraints)


def test_issuing_ca_key_usage(issuing):
    _, cert = issuing
    usage = extension_value(cert, x509.KeyUsage)

    assert usage.key_cert_sign is True
    assert usage.crl_sign is True
    assert is_critical(cert, x509.KeyUsage)


def test_issuing_ca_key_identifiers(root, issuing):
    _, root_cert = root
    _, cert = issuing

    assert extension_value(cert, x509.SubjectKeyIdentifier) == (
        x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    )
    assert crypto.authority_key_id_hex(cert) == crypto.key_id_hex(root_cert)


def test_issuing_ca_crl_distribution_point(issuing):
    _, cert = issuing
    points = extension_value(cert, x509.CRLDistributionPoints)

    assert [name.value for name in points[0].full_name] == [CRL_URL]


def test_issuing_ca_without_crl_url(root):
    root_key, root_cert = root

    _, cert = crypto.create_issuing_ca(
        root_key, root_cert, "Tenant B CA", "Tenant B", valid_days=30, crl_url=None
    )

    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)


def test_issuing_ca_validity_clipped_to_root(root):
    root_key, root_cert = root

    _, cert = crypto.create_issuing_ca(
        root_key, root_cert, "Tenant C CA", "Tenant C", valid_days=36500, crl_url=None
    )

    assert cert.not_valid_after_utc == root_cert.not_valid_after_utc
    assert cert.not_valid_before_utc >= root_cert.not_valid_before_utc


# --- issue_ec_certificate ---------------------------------------------------------------


def test_ec_cert_signed_by_issuing_ca(issuing, ec_cert, device_key):
    _, ca_cert = issuing

    ec_cert.verify_directly_issued_by(ca_cert)
    assert ec_cert.public_key() == device_key.public_key()
    assert ec_cert.issuer == ca_cert.subject


def test_ec_cert_subject_is_only_cn(ec_cert):
    assert ec_cert.subject == cn_name(PRODUCT_ID)


def test_ec_cert_san_uri(ec_cert):
    san = extension_value(ec_cert, x509.SubjectAlternativeName)

    assert list(san) == [x509.UniformResourceIdentifier(crypto.ec_uri(PRODUCT_ID))]


def test_ec_uri_is_absolute_uri_with_product_id():
    uri = crypto.ec_uri(PRODUCT_ID)
    parts = urllib.parse.urlsplit(uri)

    assert parts.scheme == "https"
    assert parts.netloc == "ztsp.invalid"
    assert parts.path.endswith("/" + PRODUCT_ID)
    assert x509.UniformResourceIdentifier(uri).value == uri


def test_ec_uri_rejects_unsafe_product_id():
    with pytest.raises(ValueError, match="EC100/evil"):
        crypto.ec_uri("EC100/evil")


def test_ec_cert_eku_client_auth_only(ec_cert):
    assert list(extension_value(ec_cert, x509.ExtendedKeyUsage)) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]


def test_ec_cert_key_usage_for_ec_key(ec_cert):
    usage = extension_value(ec_cert, x509.KeyUsage)

    assert usage.digital_signature is True
    assert usage.key_encipherment is False
    assert usage.key_cert_sign is False
    assert is_critical(ec_cert, x509.KeyUsage)


def test_ec_cert_key_usage_for_rsa_key(issuing):
    ca_key, ca_cert = issuing
    csr = make_csr(crypto.generate_private_key("rsa-2048"))

    cert = crypto.issue_ec_certificate(
        ca_key, ca_cert, csr, PRODUCT_ID, valid_days=30, crl_url=None
    )
    usage = extension_value(cert, x509.KeyUsage)

    assert usage.digital_signature is True
    assert usage.key_encipherment is True


def test_ec_cert_basic_constraints(ec_cert):
    constraints = extension_value(ec_cert, x509.BasicConstraints)

    assert constraints.ca is False
    assert is_critical(ec_cert, x509.BasicConstraints)


def test_ec_cert_key_identifiers(issuing, ec_cert):
    _, ca_cert = issuing

    assert extension_value(ec_cert, x509.SubjectKeyIdentifier) == (
        x509.SubjectKeyIdentifier.from_public_key(ec_cert.public_key())
    )
    assert crypto.authority_key_id_hex(ec_cert) == crypto.key_id_hex(ca_cert)


def test_ec_cert_crl_distribution_point(ec_cert):
    points = extension_value(ec_cert, x509.CRLDistributionPoints)

    assert [name.value for name in points[0].full_name] == [CRL_URL]


def test_ec_cert_without_crl_url(issuing, device_csr):
    ca_key, ca_cert = issuing

    cert = crypto.issue_ec_certificate(
        ca_key, ca_cert, device_csr, PRODUCT_ID, valid_days=30, crl_url=None
    )

    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)


def test_ec_cert_ignores_csr_requests(issuing, device_key):
    ca_key, ca_cert = issuing
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Requested Org"),
            x509.NameAttribute(NameOID.COMMON_NAME, PRODUCT_ID),
        ]
    )
    requested = [
        x509.BasicConstraints(ca=True, path_length=None),
        x509.SubjectAlternativeName([x509.DNSName("requested.example.test")]),
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
    ]
    csr = make_csr(device_key, subject, extensions=requested)

    cert = crypto.issue_ec_certificate(
        ca_key, ca_cert, csr, PRODUCT_ID, valid_days=30, crl_url=None
    )

    assert cert.subject == cn_name(PRODUCT_ID)
    assert extension_value(cert, x509.BasicConstraints).ca is False
    assert list(extension_value(cert, x509.SubjectAlternativeName)) == [
        x509.UniformResourceIdentifier(crypto.ec_uri(PRODUCT_ID))
    ]
    assert list(extension_value(cert, x509.ExtendedKeyUsage)) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]


def test_ec_cert_rejects_tampered_csr(issuing, device_csr):
    ca_key, ca_cert = issuing
    tampered = x509.load_pem_x509_csr(tampered_pem(device_csr).encode("ascii"))

    with pytest.raises(CSRError) as caught:
        crypto.issue_ec_certificate(
            ca_key, ca_cert, tampered, PRODUCT_ID, valid_days=30, crl_url=None
        )

    assert caught.value.code == "csr_bad_signature"


def test_ec_cert_serials_positive_and_random(issuing, device_csr):
    ca_key, ca_cert = issuing
    certs = [
        crypto.issue_ec_certificate(
            ca_key, ca_cert, device_csr, PRODUCT_ID, valid_days=1, crl_url=None
        )
        for _ in range(20)
    ]
    serials = [cert.serial_number for cert in certs]

    assert all(serial > 0 for serial in serials)
    assert all(serial.bit_length() > 63 for serial in serials)
    assert len(set(serials)) == len(serials)


def test_ec_cert_validity_days(issuing, device_csr):
    ca_key, ca_cert = issuing

    cert = crypto.issue_ec_certificate(
        ca_key, ca_cert, device_csr, PRODUCT_ID, valid_days=10, crl_url=None
    )
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc

    assert lifetime == datetime.timedelta(days=10, minutes=5)


def test_ec_cert_validity_clipped_to_ca(issuing, device_csr):
    ca_key, ca_cert = issuing

    cert = crypto.issue_ec_certificate(
        ca_key, ca_cert, device_csr, PRODUCT_ID, valid_days=36500, crl_url=None
    )

    assert cert.not_valid_after_utc == ca_cert.not_valid_after_utc
    assert cert.not_valid_before_utc >= ca_cert.not_valid_before_utc


def test_ec_cert_rejects_expired_ca(device_csr):
    ca_key = ec.generate_private_key(ec.SECP384R1())
    now = datetime.datetime.now(UTC)
    ca_cert = make_ca(
        ca_key,
        not_before=now - datetime.timedelta(days=10),
        not_after=now - datetime.timedelta(days=1),
    )

    with pytest.raises(ValueError, match="expired"):
        crypto.issue_ec_certificate(
            ca_key, ca_cert, device_csr, PRODUCT_ID, valid_days=30, crl_url=None
        )


def test_ec_cert_sha384_with_p384_ca(ec_cert):
    assert isinstance(ec_cert.signature_hash_algorithm, hashes.SHA384)


def test_ec_cert_sha256_with_p256_ca(device_csr):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(UTC)
    ca_cert = make_ca(
        ca_key,
        not_before=now - datetime.timedelta(days=1),
        not_after=now + datetime.timedelta(days=30),
    )

    cert = crypto.issue_ec_certificate(
        ca_key, ca_cert, device_csr, PRODUCT_ID, valid_days=30, crl_url=None
    )

    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    cert.verify_directly_issued_by(ca_cert)
    # The hand-made CA has an SKI, so the AKI copies it.
    assert crypto.authority_key_id_hex(cert) == crypto.key_id_hex(ca_cert)


# --- chain checks with the openssl CLI --------------------------------------------------


def test_openssl_verifies_chain(tmp_path, root, issuing, ec_cert):
    root_pem = write_pem(tmp_path, "root.pem", root[1])
    issuing_pem = write_pem(tmp_path, "issuing.pem", issuing[1])
    ec_pem = write_pem(tmp_path, "ec.pem", ec_cert)

    result = subprocess.run(
        [
            "openssl", "verify", "-x509_strict", "-purpose", "sslclient",
            "-CAfile", str(root_pem), "-untrusted", str(issuing_pem), str(ec_pem),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"{ec_pem}: OK"


def test_openssl_rejects_revoked_cert(tmp_path, root, issuing, ec_cert):
    ca_key, ca_cert = issuing
    revoked_at = datetime.datetime.now(UTC) - datetime.timedelta(minutes=1)
    crl = crypto.build_crl(
        ca_key,
        ca_cert,
        [(ec_cert.serial_number, revoked_at, "key_compromise")],
        next_update_hours=24,
        crl_number=1,
    )
    crl_pem = tmp_path / "crl.pem"
    crl_pem.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    root_pem = write_pem(tmp_path, "root.pem", root[1])
    issuing_pem = write_pem(tmp_path, "issuing.pem", ca_cert)
    ec_pem = write_pem(tmp_path, "ec.pem", ec_cert)

    result = subprocess.run(
        [
            "openssl", "verify", "-crl_check", "-CRLfile", str(crl_pem),
            "-CAfile", str(root_pem), "-untrusted", str(issuing_pem), str(ec_pem),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode != 0
    assert "certificate revoked" in result.stdout + result.stderr


# --- issue_server_certificate -----------------------------------------------------------


def test_server_cert_key_and_signature(root, server):
    _, root_cert = root
    key, cert = server

    cert.verify_directly_issued_by(root_cert)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    assert cert.public_key() == key.public_key()


def test_server_cert_subject_is_first_dns_name(server):
    _, cert = server

    assert cert.subject == cn_name(GATEWAY_DNS)


def test_server_cert_san(server):
    _, cert = server
    san = extension_value(cert, x509.SubjectAlternativeName)

    assert san.get_values_for_type(x509.DNSName) == [GATEWAY_DNS, "tunnel.ztsp.test"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]


def test_server_cert_usages(server):
    _, cert = server
    usage = extension_value(cert, x509.KeyUsage)

    assert list(extension_value(cert, x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert usage.digital_signature is True
    assert usage.key_encipherment is False
    assert is_critical(cert, x509.KeyUsage)
    assert extension_value(cert, x509.BasicConstraints).ca is False


def test_server_cert_rejects_empty_dns_names(root):
    root_key, root_cert = root

    with pytest.raises(ValueError, match="dns_names"):
        crypto.issue_server_certificate(
            root_key, root_cert, dns_names=[], ip_addresses=["127.0.0.1"], valid_days=1
        )


def test_server_cert_rejects_bad_ip(root):
    root_key, root_cert = root

    with pytest.raises(ValueError, match=re.escape("300.1.1.1")):
        crypto.issue_server_certificate(
            root_key, root_cert, dns_names=[GATEWAY_DNS], ip_addresses=["300.1.1.1"], valid_days=1
        )


# --- TLS 1.3 handshake on loopback ------------------------------------------------------


@pytest.mark.parametrize("server_hostname", [GATEWAY_DNS, "127.0.0.1"])
def test_tls13_mutual_handshake(
    tmp_path, root, issuing, server, ec_cert, device_key, server_hostname
):
    server_key, server_cert = server
    root_pem = write_pem(tmp_path, "root.pem", root[1])
    server_pem = write_pem(tmp_path, "server.pem", server_cert)
    server_key_pem = tmp_path / "server.key"
    server_key_pem.write_bytes(crypto.private_key_to_pem(server_key, None))
    client_chain_pem = write_pem(tmp_path, "client-chain.pem", ec_cert, issuing[1])
    client_key_pem = tmp_path / "client.key"
    client_key_pem.write_bytes(crypto.private_key_to_pem(device_key, None))

    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.minimum_version = ssl.TLSVersion.TLSv1_3
    server_context.verify_flags |= ssl.VERIFY_X509_STRICT
    server_context.verify_mode = ssl.CERT_REQUIRED
    server_context.load_cert_chain(server_pem, server_key_pem)
    server_context.load_verify_locations(root_pem)

    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.minimum_version = ssl.TLSVersion.TLSv1_3
    client_context.verify_flags |= ssl.VERIFY_X509_STRICT
    client_context.load_verify_locations(root_pem)
    client_context.load_cert_chain(client_chain_pem, client_key_pem)

    server_seen: dict[str, object] = {}

    def serve_once(listener: socket.socket) -> None:
        try:
            connection, _ = listener.accept()
            with server_context.wrap_socket(connection, server_side=True) as tls:
                server_seen["version"] = tls.version()
                server_seen["peer"] = tls.getpeercert()
                tls.sendall(b"ok")
        except (OSError, ssl.SSLError) as exc:
            server_seen["error"] = exc

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TLS_TIMEOUT_SECONDS)
        port = listener.getsockname()[1]
        thread = threading.Thread(target=serve_once, args=(listener,), daemon=True)
        thread.start()

        with socket.create_connection(("127.0.0.1", port), timeout=TLS_TIMEOUT_SECONDS) as raw:
            with client_context.wrap_socket(raw, server_hostname=server_hostname) as tls:
                client_version = tls.version()
                reply = tls.recv(2)
        thread.join(TLS_TIMEOUT_SECONDS)

    assert "error" not in server_seen, server_seen.get("error")
    assert client_version == "TLSv1.3"
    assert reply == b"ok"
    assert server_seen["version"] == "TLSv1.3"
    peer_subject = dict(item for rdn in server_seen["peer"]["subject"] for item in rdn)
    assert peer_subject["commonName"] == PRODUCT_ID


# --- pkilint ----------------------------------------------------------------------------


def test_pkilint_root_ca(tmp_path, root):
    path = write_pem(tmp_path, "root.pem", root[1])

    assert run_pkilint("lint_pkix_cert", [], path) == []


def test_pkilint_issuing_ca(tmp_path, issuing):
    path = write_pem(tmp_path, "issuing.pem", issuing[1])

    assert run_pkilint("lint_pkix_cert", [], path) == []


def test_pkilint_ec_cert(tmp_path, ec_cert):
    path = write_pem(tmp_path, "ec.pem", ec_cert)

    assert run_pkilint("lint_pkix_cert", [], path) == []


def test_pkilint_server_cert(tmp_path, server):
    path = write_pem(tmp_path, "server.pem", server[1])

    assert run_pkilint("lint_pkix_cert", [], path) == []


def test_pkilint_crl(tmp_path, issuing, ec_cert):
    ca_key, ca_cert = issuing
    crl = crypto.build_crl(
        ca_key,
        ca_cert,
        [(ec_cert.serial_number, datetime.datetime.now(UTC), "superseded")],
        next_update_hours=24,
        crl_number=7,
    )
    path = tmp_path / "crl.pem"
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))

    assert run_pkilint("lint_crl", ["-t", "CRL", "-p", "PKIX"], path) == []


# --- build_crl --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crl(issuing):
    ca_key, ca_cert = issuing
    revoked_at = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    return crypto.build_crl(
        ca_key,
        ca_cert,
        [
            (0x1111, revoked_at, "key_compromise"),
            (0x2222, revoked_at, "superseded"),
            (0x3333, revoked_at, "cessation_of_operation"),
            (0x4444, revoked_at, None),
            (0x5555, revoked_at, "unspecified"),
        ],
        next_update_hours=24,
        crl_number=42,
    )


def test_crl_signed_by_ca(issuing, crl):
    _, ca_cert = issuing

    assert crl.is_signature_valid(ca_cert.public_key())
    assert crl.issuer == ca_cert.subject
    assert isinstance(crl.signature_hash_algorithm, hashes.SHA384)


def test_crl_extensions(issuing, crl):
    _, ca_cert = issuing

    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 42
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier.hex() == crypto.key_id_hex(ca_cert)


def test_crl_next_update(crl):
    window = crl.next_update_utc - datetime.datetime.now(UTC)

    assert datetime.timedelta(hours=23) < window <= datetime.timedelta(hours=24)


def test_crl_entry_reasons(crl):
    reasons = {}
    for entry in crl:
        try:
            reasons[entry.serial_number] = entry.extensions.get_extension_for_class(
                x509.CRLReason
            ).value.reason
        except x509.ExtensionNotFound:
            reasons[entry.serial_number] = None

    assert reasons == {
        0x1111: x509.ReasonFlags.key_compromise,
        0x2222: x509.ReasonFlags.superseded,
        0x3333: x509.ReasonFlags.cessation_of_operation,
        0x4444: None,
        0x5555: None,
    }


def test_crl_entry_revocation_time(crl):
    entry = crl.get_revoked_certificate_by_serial_number(0x1111)

    assert entry.revocation_date_utc == datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_crl_empty(issuing):
    ca_key, ca_cert = issuing

    crl = crypto.build_crl(ca_key, ca_cert, [], next_update_hours=1, crl_number=0)

    assert len(crl) == 0
    assert crl.is_signature_valid(ca_cert.public_key())


def test_crl_rejects_unknown_reason(issuing):
    ca_key, ca_cert = issuing
    revoked = [(1, datetime.datetime.now(UTC), "stolen")]

    with pytest.raises(ValueError, match="stolen"):
        crypto.build_crl(ca_key, ca_cert, revoked, next_update_hours=1, crl_number=1)


def test_crl_rejects_naive_datetime(issuing):
    ca_key, ca_cert = issuing
    revoked = [(1, datetime.datetime(2025, 1, 1), None)]

    with pytest.raises(ValueError, match="timezone"):
        crypto.build_crl(ca_key, ca_cert, revoked, next_update_hours=1, crl_number=1)


def test_crl_rejects_negative_number(issuing):
    ca_key, ca_cert = issuing

    with pytest.raises(ValueError, match="crl_number"):
        crypto.build_crl(ca_key, ca_cert, [], next_update_hours=1, crl_number=-1)


# --- PEM helpers and identifiers --------------------------------------------------------


def test_cert_pem_round_trip(ec_cert):
    pem = crypto.cert_to_pem(ec_cert)

    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    assert crypto.load_certificate(pem) == ec_cert
    assert crypto.load_certificate(pem.encode("ascii")) == ec_cert


def test_load_certificate_rejects_chain(ec_cert, issuing):
    pem = crypto.cert_to_pem(ec_cert) + crypto.cert_to_pem(issuing[1])

    with pytest.raises(ValueError, match="2 certificates"):
        crypto.load_certificate(pem)


def test_load_certificates_keeps_order(root, issuing, ec_cert):
    pem = "".join(crypto.cert_to_pem(cert) for cert in (ec_cert, issuing[1], root[1]))

    assert crypto.load_certificates(pem) == [ec_cert, issuing[1], root[1]]


def test_private_key_pem_unencrypted(device_key):
    pem = crypto.private_key_to_pem(device_key, None)

    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert crypto.load_private_key(pem, None).public_key() == device_key.public_key()


def test_private_key_pem_encrypted(device_key):
    pem = crypto.private_key_to_pem(device_key, b"correct horse")

    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    loaded = crypto.load_private_key(pem, b"correct horse")
    assert loaded.public_key() == device_key.public_key()


def test_private_key_wrong_passphrase(device_key):
    pem = crypto.private_key_to_pem(device_key, b"correct horse")

    with pytest.raises(ValueError):
        crypto.load_private_key(pem, b"wrong")


def test_private_key_rejects_empty_passphrase(device_key):
    with pytest.raises(ValueError, match="passphrase"):
        crypto.private_key_to_pem(device_key, b"")


def test_serial_hex(ec_cert):
    value = crypto.serial_hex(ec_cert)

    assert value == value.lower()
    assert ":" not in value
    assert int(value, 16) == ec_cert.serial_number


def test_key_id_hex(ec_cert):
    ski = extension_value(ec_cert, x509.SubjectKeyIdentifier)

    assert crypto.key_id_hex(ec_cert) == ski.digest.hex()


def test_authority_key_id_hex_absent():
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(UTC)
    cert = make_ca(key, not_before=now, not_after=now + datetime.timedelta(days=1))

    assert crypto.authority_key_id_hex(cert) is None


# --- product_id_from_certificate --------------------------------------------------------


def test_product_id_from_ec_cert(ec_cert):
    assert crypto.product_id_from_certificate(ec_cert) == PRODUCT_ID


def test_product_id_from_server_cert(server):
    assert crypto.product_id_from_certificate(server[1]) is None


def test_product_id_san_mismatch(issuing):
    ca_key, ca_cert = issuing
    alt_names = [x509.UniformResourceIdentifier(crypto.ec_uri(OTHER_PRODUCT_ID))]
    cert = make_leaf(ca_key, ca_cert, cn_name(PRODUCT_ID), alt_names)

    assert crypto.product_id_from_certificate(cert) is None


def test_product_id_two_ec_uris(issuing):
    ca_key, ca_cert = issuing
    alt_names = [
        x509.UniformResourceIdentifier(crypto.ec_uri(PRODUCT_ID)),
        x509.UniformResourceIdentifier(crypto.ec_uri(OTHER_PRODUCT_ID)),
    ]
    cert = make_leaf(ca_key, ca_cert, cn_name(PRODUCT_ID), alt_names)

    assert crypto.product_id_from_certificate(cert) is None


def test_product_id_without_san(issuing):
    ca_key, ca_cert = issuing
    cert = make_leaf(ca_key, ca_cert, cn_name(PRODUCT_ID), None)

    assert crypto.product_id_from_certificate(cert) is None


def test_ten_thousand_serials_are_unique_and_well_formed(issuing, device_csr):
    issuing_key, issuing_cert = issuing
    serials = [
        crypto.issue_ec_certificate(issuing_key, issuing_cert, device_csr, PRODUCT_ID, valid_days=90, crl_url=None)
        .serial_number
        for _ in range(10_000)
    ]

    assert len(set(serials)) == len(serials)
    assert all(serial > 0 for serial in serials)
    # RFC 5280 4.1.2.2: at most 20 octets; at least 64 random bits.
    assert all(serial.bit_length() <= 159 for serial in serials)
    assert sum(serial.bit_length() > 63 for serial in serials) == len(serials)


LONG_PRODUCT_ID = "EC-EXTENDED-RANGE-OUTDOOR-MODEL9:7c9e6679-7425-40de-944b-e07fc1f90ae7"


def test_common_name_for_short_product_id_is_itself():
    assert crypto.common_name_for(PRODUCT_ID) == PRODUCT_ID


def test_common_name_for_long_product_id_is_uuid():
    assert len(LONG_PRODUCT_ID) > 64
    assert crypto.common_name_for(LONG_PRODUCT_ID) == "7c9e6679-7425-40de-944b-e07fc1f90ae7"


def test_long_product_id_in_san(issuing, device_key):
    ca_key, ca_cert = issuing
    csr = make_csr(device_key, cn_name(crypto.common_name_for(LONG_PRODUCT_ID)))

    cert = crypto.issue_ec_certificate(ca_key, ca_cert, csr, LONG_PRODUCT_ID, valid_days=90, crl_url=None)

    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == crypto.common_name_for(LONG_PRODUCT_ID)
    assert crypto.product_id_from_certificate(cert) == LONG_PRODUCT_ID
