"""X.509 building blocks for ZTSP: CSR checks, CA and leaf issuance, CRLs and PEM helpers.

Pure functions on `cryptography` objects: no Django, no database, no I/O. The hierarchy is
one root CA per deployment, one issuing CA per Director tenant (signed by the root) and
Edge Controller (EC) client certificates issued by the tenant's issuing CA from a CSR
made on the device. The tunnel gateway's TLS server certificate comes from the root CA.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import ipaddress
import re

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CSR_BAD_SIGNATURE",
    "CSR_MALFORMED",
    "CSR_SUBJECT_MISMATCH",
    "CSR_UNSUPPORTED_KEY",
    "CSR_WEAK_KEY",
    "EC_URI_PREFIX",
    "MAX_CSR_BYTES",
    "CSRError",
    "PrivateKey",
    "authority_key_id_hex",
    "build_crl",
    "cert_to_pem",
    "common_name_for",
    "create_issuing_ca",
    "create_root_ca",
    "csr_fingerprint",
    "ec_uri",
    "generate_private_key",
    "issue_ec_certificate",
    "issue_server_certificate",
    "key_id_hex",
    "load_certificate",
    "load_certificates",
    "load_private_key",
    "parse_csr_pem",
    "private_key_to_pem",
    "product_id_from_certificate",
    "serial_hex",
    "sign_builder",
    "validate_csr",
]

# Key types this module generates and signs with. CA keys are EC in practice, but RSA is
# accepted so that an imported CA key still works.
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

# Maximum size of a submitted CSR in bytes (PEM text). An RSA-4096 CSR with only a CN is
# 1630 bytes as PEM, so this leaves room for extensions but rejects huge uploads unparsed.
MAX_CSR_BYTES = 16384

# Stable CSRError codes, which API clients and ECs match on.
CSR_MALFORMED = "csr_malformed"
CSR_BAD_SIGNATURE = "csr_bad_signature"
CSR_SUBJECT_MISMATCH = "csr_subject_mismatch"
CSR_WEAK_KEY = "csr_weak_key"
CSR_UNSUPPORTED_KEY = "csr_unsupported_key"

# RSA key size bounds in bits for CSR keys.
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 4096

# EC curves accepted in CSRs, by their `cryptography` curve name.
ALLOWED_CSR_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384"}

# Prefix of the SAN URI that binds an EC certificate to its Product ID (ModelNo:UUID).
# The URI is a name and is never fetched. A URN such as urn:ztsp:ec:<id> is valid under
# RFC 5280, but pkilint 0.13.3 reports it as pkix.invalid_uri_syntax (ERROR), because it
# checks URIs with validators.url, which accepts only ftp, ftps, git, http, https, rtsp,
# sftp, ssh and telnet URLs with a host. So the Product ID is the last path segment of an
# https URI under the reserved .invalid top-level domain, which never resolves.
EC_URI_PREFIX = "https://ztsp.invalid/ec/"

# Characters allowed in a Product ID placed in the URI path without percent-encoding:
# RFC 3986 unreserved characters plus ':', which is a valid pchar.
_PRODUCT_ID_URI_SAFE = re.compile(r"[A-Za-z0-9._~:-]+")

# notBefore is set this far in the past so that a peer whose clock lags ours still
# accepts a certificate or CRL issued a moment ago.
CLOCK_SKEW_ALLOWANCE = datetime.timedelta(minutes=5)

# RFC 5280 ub-common-name: a commonName has at most 64 characters.
MAX_COMMON_NAME_LENGTH = 64

_PEM_BEGIN = b"-----BEGIN "
_CSR_PEM_LABELS = (
    b"-----BEGIN CERTIFICATE REQUEST-----",
    b"-----BEGIN NEW CERTIFICATE REQUEST-----",
)

_PEM_BLOCK_RE = re.compile(
    rb"-----BEGIN (?P<label>(?:NEW )?CERTIFICATE REQUEST)-----(?P<body>[A-Za-z0-9+/=\s]*?)-----END (?P=label)-----"
)

_KEY_KINDS = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072")

# RFC 5280 reason codes that may appear on a full CRL, keyed by `x509.ReasonFlags` member
# name. "unspecified" is accepted but written as no reason extension, because RFC 5280
# section 5.3.1 states the extension SHOULD be absent rather than carry unspecified (0).
# removeFromCRL is left out because it is only valid in delta CRLs, which we do not build.
_CRL_REASONS = {
    flag.name: flag for flag in x509.ReasonFlags if flag is not x509.ReasonFlags.remove_from_crl
}


class CSRError(ValueError):
    """Rejection of a submitted CSR.

    `code` is one of the CSR_* constants and stays stable for API clients. `detail` is a
    message for humans that names the rejected value and what to do about it.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail

    def __repr__(self) -> str:
        return f"CSRError(code={self.code!r}, detail={self.detail!r})"


# --- CSR checks -------------------------------------------------------------------------


def validate_csr(csr_pem: str | bytes, expected_cn: str) -> x509.CertificateSigningRequest:
    """Parse a PEM PKCS#10 CSR and check it for issuance to `expected_cn`.

    Checks run in this order and the first failure raises `CSRError`: size and PEM
    framing, parsing (`csr_malformed`), key type and size (`csr_weak_key`,
    `csr_unsupported_key`), self-signature (`csr_bad_signature`), then subject
    commonName (`csr_subject_mismatch`, compared exactly, so the caller passes the
    canonical Product ID). The key comes before the signature so that a huge RSA key
    is rejected before any costly verification.
    """
    csr = _parse_csr_pem(csr_pem)
    _check_public_key(_csr_public_key(csr))
    _check_csr_signature(csr)
    _check_csr_subject(csr, expected_cn)
    return csr


def csr_fingerprint(csr: x509.CertificateSigningRequest) -> str:
    """Return the lowercase hex SHA-256 of the CSR's DER encoding.

    Resubmitting the same CSR gives the same fingerprint, so callers use it to make
    enrollment requests idempotent.
    """
    der = csr.public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def parse_csr_pem(csr_pem: str | bytes) -> x509.CertificateSigningRequest:
    """Parse one PEM CSR in any spelling firmware sends; raises `CSRError` (`csr_malformed`)."""
    return _parse_csr_pem(csr_pem)


def _parse_csr_pem(csr_pem: str | bytes) -> x509.CertificateSigningRequest:
    if isinstance(csr_pem, str):
        try:
            data = csr_pem.encode("ascii")
        except UnicodeEncodeError:
            raise CSRError(
                CSR_MALFORMED,
                "CSR contains non-ASCII characters, so it is not PEM; "
                "submit the PKCS#10 request as PEM text.",
            ) from None
    else:
        data = bytes(csr_pem)

    if len(data) > MAX_CSR_BYTES:
        raise CSRError(
            CSR_MALFORMED,
            f"CSR is {len(data)} bytes, over the limit of {MAX_CSR_BYTES} bytes; "
            "submit a single PEM certificate request without extra content.",
        )

    block_count = data.count(_PEM_BEGIN)
    if block_count == 0:
        raise CSRError(
            CSR_MALFORMED,
            "CSR is not PEM: no '-----BEGIN CERTIFICATE REQUEST-----' line found; "
            "submit the PKCS#10 request PEM-encoded.",
        )
    if block_count > 1:
        raise CSRError(
            CSR_MALFORMED,
            f"CSR text contains {block_count} PEM blocks; submit exactly one "
            "'CERTIFICATE REQUEST' block and nothing else.",
        )
    if not any(label in data for label in _CSR_PEM_LABELS):
        label = _first_pem_label(data)
        raise CSRError(
            CSR_MALFORMED,
            f"PEM block is '{label}', not 'CERTIFICATE REQUEST'; "
            "submit a PKCS#10 certificate signing request.",
        )

    # Firmware writes PEM in many ways (CRLF, base64 on one long line, blank
    # lines around or inside): decode the block's base64 ourselves, ignoring
    # all whitespace, instead of relying on a strict PEM line parser.
    match = _PEM_BLOCK_RE.search(data)
    if match is None:
        raise CSRError(
            CSR_MALFORMED,
            "CSR PEM block has no matching '-----END CERTIFICATE REQUEST-----' line; "
            "submit the whole PEM block.",
        )
    try:
        der = base64.b64decode(b"".join(match.group("body").split()), validate=True)
    except (ValueError, binascii.Error) as exc:
        raise CSRError(
            CSR_MALFORMED,
            "CSR PEM block is not valid base64; regenerate the request and submit it again.",
        ) from exc
    try:
        return x509.load_der_x509_csr(der)
    except ValueError as exc:
        # The parser's message is an internal ASN.1 trace that means nothing to an EC vendor, so it is left out.
        raise CSRError(
            CSR_MALFORMED,
            "CSR PEM block does not hold a DER-encoded PKCS#10 CertificationRequest; "
            "regenerate the request and submit it again.",
        ) from exc


def _first_pem_label(data: bytes) -> str:
    start = data.index(_PEM_BEGIN) + len(_PEM_BEGIN)
    end = data.find(b"-----", start)
    if end == -1:
        end = start
    return data[start:end].decode("ascii", errors="replace")


def _csr_public_key(csr: x509.CertificateSigningRequest) -> CertificatePublicKeyTypes:
    try:
        return csr.public_key()
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise CSRError(
            CSR_UNSUPPORTED_KEY,
            f"CSR public key type is not supported ({exc}); "
            "use an EC P-256 or P-384 key, or RSA with 2048 to 4096 bits.",
        ) from exc


def _check_csr_signature(csr: x509.CertificateSigningRequest) -> None:
    try:
        # For a signature algorithm OID it does not know, cryptography 50 returns
        # False from is_signature_valid; only reading the hash algorithm raises.
        csr.signature_hash_algorithm  # noqa: B018
        valid = csr.is_signature_valid
    except (UnsupportedAlgorithm, ValueError) as exc:
        # The library cannot check signatures made with key types or signature algorithms
        # it does not know, so such CSRs are reported as unsupported rather than forged.
        raise CSRError(
            CSR_UNSUPPORTED_KEY,
            f"CSR signature algorithm or key type is not supported ({exc}); "
            "use an EC P-256 or P-384 key, or RSA with 2048 to 4096 bits.",
        ) from exc
    if not valid:
        raise CSRError(
            CSR_BAD_SIGNATURE,
            "CSR signature does not verify with the public key inside it; the request was "
            "altered or signed with another key, so generate a new CSR on the device.",
        )


def _check_csr_subject(csr: x509.CertificateSigningRequest, expected_cn: str) -> None:
    common_names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not common_names:
        raise CSRError(
            CSR_SUBJECT_MISMATCH,
            f"CSR subject '{csr.subject.rfc4514_string()}' has no commonName; "
            f"set CN={expected_cn} and submit a new CSR.",
        )
    if len(common_names) > 1:
        values = ", ".join(repr(attribute.value) for attribute in common_names)
        raise CSRError(
            CSR_SUBJECT_MISMATCH,
            f"CSR subject has {len(common_names)} commonNames ({values}); "
            f"use a single CN={expected_cn} and submit a new CSR.",
        )
    common_name = common_names[0].value
    if common_name != expected_cn:
        raise CSRError(
            CSR_SUBJECT_MISMATCH,
            f"CSR commonName {common_name!r} does not match the expected Product ID "
            f"{expected_cn!r}; set CN={expected_cn} exactly and submit a new CSR.",
        )


def _check_public_key(public_key: CertificatePublicKeyTypes) -> None:
    fix = "use an EC P-256 or P-384 key, or RSA with 2048 to 4096 bits"
    if isinstance(public_key, rsa.RSAPublicKey):
        bits = public_key.key_size
        if bits < MIN_RSA_BITS:
            raise CSRError(
                CSR_WEAK_KEY,
                f"CSR RSA key has {bits} bits, below the minimum of {MIN_RSA_BITS}; "
                f"{fix} and submit a new CSR.",
            )
        if bits > MAX_RSA_BITS:
            raise CSRError(
                CSR_UNSUPPORTED_KEY,
                f"CSR RSA key has {bits} bits, above the maximum of {MAX_RSA_BITS}; "
                f"{fix} and submit a new CSR.",
            )
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = public_key.curve.name
        if curve not in ALLOWED_CSR_CURVES:
            raise CSRError(
                CSR_UNSUPPORTED_KEY,
                f"CSR EC key uses curve {curve}, which is not supported; "
                f"{fix} and submit a new CSR.",
            )
        return
    key_type = type(public_key).__name__.removeprefix("_")
    raise CSRError(
        CSR_UNSUPPORTED_KEY,
        f"CSR key type {key_type} is not supported; {fix} and submit a new CSR.",
    )


# --- Keys -------------------------------------------------------------------------------


def generate_private_key(kind: str = "ec-p256") -> PrivateKey:
    """Generate a private key of `kind`: "ec-p256", "ec-p384", "rsa-2048" or "rsa-3072"."""
    if kind == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "rsa-2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "rsa-3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ValueError(f"Unknown key kind {kind!r}; use one of {', '.join(_KEY_KINDS)}.")


def _signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    # Match the hash to the key's security level: SHA-256 with P-256, SHA-384 with P-384.
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name == "secp256r1":
            return hashes.SHA256()
        if key.curve.name == "secp384r1":
            return hashes.SHA384()
        if key.curve.name == "secp521r1":
            return hashes.SHA512()
        raise ValueError(
            f"CA key uses curve {key.curve.name}, which is not supported for signing; "
            "use a P-256 or P-384 CA key."
        )
    if isinstance(key, rsa.RSAPrivateKey):
        return hashes.SHA256()
    raise ValueError(
        f"CA key type {type(key).__name__} is not supported for signing; "
        "use an EC P-256/P-384 or RSA CA key."
    )


def sign_builder(builder, signer):
    """Sign a certificate or CRL builder with a private key or a signer object.

    ``signer`` is a private key, or anything with a ``sign(builder)`` method
    (see :mod:`pki.signers`), so that an HSM or KMS key can stand in for a
    key held in memory.
    """
    if isinstance(signer, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        return builder.sign(signer, _signature_hash(signer))
    return signer.sign(builder)


# --- Certificates -----------------------------------------------------------------------


def create_root_ca(
    common_name: str, organization: str, *, valid_days: int, signer=None
) -> tuple[ec.EllipticCurvePrivateKey | None, x509.Certificate]:
    """Create a self-signed root CA with a new EC P-384 key, or with `signer`'s key.

    With a `signer` (see `sign_builder`), None is returned in place of the private key.

    The root allows one CA below it (pathLenConstraint 1) because only tenant issuing
    CAs sit between it and end-entity certificates.
    """
    _check_valid_days(valid_days)
    key = None
    if signer is None:
        key = signer = ec.generate_private_key(ec.SECP384R1())
    public_key = signer.public_key()
    subject = _ca_name(common_name, organization)
    not_before = _now() - CLOCK_SKEW_ALLOWANCE
    not_after = not_before + datetime.timedelta(days=valid_days)
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)

    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
            critical=False,
        )
    )
    return key, sign_builder(builder, signer)


def create_issuing_ca(
    root_key: PrivateKey,
    root_cert: x509.Certificate,
    common_name: str,
    organization: str,
    *,
    valid_days: int,
    crl_url: str | None,
    public_key: CertificatePublicKeyTypes | None = None,
) -> tuple[ec.EllipticCurvePrivateKey | None, x509.Certificate]:
    """Create a tenant issuing CA, signed by the root CA (a private key or a signer).

    With no `public_key`, a new EC P-384 key is generated and returned; with one (a key
    made in an HSM or KMS), the certificate is for that key and None is returned in
    place of the private key. The CA may issue only end-entity certificates
    (pathLenConstraint 0). Its validity is clipped to the root's, and it carries a CRL
    distribution point when `crl_url` is given. Raises ValueError when the root has
    expired or `valid_days` is not positive.
    """
    _check_valid_days(valid_days)
    key = None
    if public_key is None:
        key = ec.generate_private_key(ec.SECP384R1())
        public_key = key.public_key()
    not_before, not_after = _validity_within_issuer(root_cert, valid_days)

    builder = (
        x509.CertificateBuilder()
        .subject_name(_ca_name(common_name, organization))
        .issuer_name(root_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_authority_key_identifier(root_cert), critical=False)
    )
    if crl_url is not None:
        builder = builder.add_extension(_crl_distribution_points(crl_url), critical=False)
    return key, sign_builder(builder, root_key)


def issue_ec_certificate(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    csr: x509.CertificateSigningRequest,
    product_id: str,
    *,
    valid_days: int,
    crl_url: str | None,
) -> x509.Certificate:
    """Issue an Edge Controller client certificate for the key in `csr`.

    `csr` should come from `validate_csr`. Its signature and key are checked again here
    (raising CSRError), but only its public key is used. The subject is CN=product_id
    and the SAN is the URI `ec_uri(product_id)`, whatever the CSR requests. The
    signature hash follows the CA key (SHA-256 for P-256, SHA-384 for P-384) and the
    validity is clipped to the CA's notAfter.
    """
    _check_valid_days(valid_days)
    common_name = common_name_for(product_id)
    _check_common_name(common_name, "Product ID")
    uri = ec_uri(product_id)
    _check_csr_signature(csr)
    public_key = _csr_public_key(csr)
    _check_public_key(public_key)
    not_before, not_after = _validity_within_issuer(ca_cert, valid_days)

    is_rsa = isinstance(public_key, rsa.RSAPublicKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # keyEncipherment applies only to RSA key transport, because EC keys only sign.
        .add_extension(_end_entity_key_usage(key_encipherment=is_rsa), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_authority_key_identifier(ca_cert), critical=False)
    )
    if crl_url is not None:
        builder = builder.add_extension(_crl_distribution_points(crl_url), critical=False)
    return sign_builder(builder, ca_key)


def issue_server_certificate(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    *,
    dns_names: list[str],
    ip_addresses: list[str],
    valid_days: int,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Create a TLS server key (EC P-256) and certificate for the tunnel gateway.

    The subject CN is the first DNS name, and the SAN lists every DNS name and IP address.
    Raises ValueError when `dns_names` is empty or an IP address does not parse.
    """
    _check_valid_days(valid_days)
    if not dns_names:
        raise ValueError(
            "dns_names is empty; pass at least one DNS name, because the first one "
            "becomes the subject commonName."
        )
    _check_common_name(dns_names[0], "First DNS name")
    addresses = [_parse_ip_address(value) for value in ip_addresses]
    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = _validity_within_issuer(ca_cert, valid_days)

    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    alt_names += [x509.IPAddress(address) for address in addresses]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_end_entity_key_usage(key_encipherment=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_identifier(ca_cert), critical=False)
    )
    return key, sign_builder(builder, ca_key)


def ec_uri(product_id: str) -> str:
    """Return the SAN URI that names an Edge Controller, `EC_URI_PREFIX` + `product_id`.

    Raises ValueError when the Product ID has characters that would need percent-encoding.
    """
    if not _PRODUCT_ID_URI_SAFE.fullmatch(product_id):
        raise ValueError(
            f"Product ID {product_id!r} contains characters outside A-Z, a-z, 0-9 and "
            "'.', '_', '~', ':', '-'; pass the canonical ModelNo:UUID form."
        )
    return f"{EC_URI_PREFIX}{product_id}"


def _ca_name(common_name: str, organization: str) -> x509.Name:
    _check_common_name(common_name, "CA common name")
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _end_entity_key_usage(*, key_encipherment: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _authority_key_identifier(issuer_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    # Copy the issuer's SKI so that path building matches even if the issuer computed its
    # SKI another way. Fall back to hashing the issuer's key for CAs imported without SKI.
    try:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _crl_distribution_points(crl_url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(crl_url)],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
        ]
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _check_valid_days(valid_days: int) -> None:
    if valid_days <= 0:
        raise ValueError(f"valid_days is {valid_days}; pass a positive number of days.")


def _check_common_name(value: str, what: str) -> None:
    if not 1 <= len(value) <= MAX_COMMON_NAME_LENGTH:
        raise ValueError(
            f"{what} {value!r} has {len(value)} characters, but a commonName must have "
            f"1 to {MAX_COMMON_NAME_LENGTH} (RFC 5280 ub-common-name); shorten it."
        )


def _parse_ip_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(
            f"IP address {value!r} is invalid; pass IPv4 or IPv6 addresses such as '127.0.0.1'."
        ) from None


def _validity_within_issuer(
    issuer_cert: x509.Certificate, valid_days: int
) -> tuple[datetime.datetime, datetime.datetime]:
    """Return (notBefore, notAfter) for a new certificate, nested inside the issuer's validity.

    notBefore is backdated by CLOCK_SKEW_ALLOWANCE but not before the issuer's notBefore,
    and notAfter is at most the issuer's notAfter, because a chain is only valid while
    every certificate in it is.
    """
    now = _now()
    issuer_not_before = issuer_cert.not_valid_before_utc
    issuer_not_after = issuer_cert.not_valid_after_utc
    if issuer_not_after <= now:
        raise ValueError(
            f"Issuer '{issuer_cert.subject.rfc4514_string()}' expired at "
            f"{issuer_not_after.isoformat()}; renew the CA before issuing from it."
        )
    not_before = max(now - CLOCK_SKEW_ALLOWANCE, issuer_not_before)
    not_after = min(now + datetime.timedelta(days=valid_days), issuer_not_after)
    return not_before, not_after


# --- CRLs -------------------------------------------------------------------------------


def build_crl(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    revoked: list[tuple[int, datetime.datetime, str | None]],
    *,
    next_update_hours: int,
    crl_number: int,
) -> x509.CertificateRevocationList:
    """Build and sign a full CRL for `ca_cert` with AKI and CRL number extensions.

    Each `revoked` entry is (serial number, timezone-aware revocation time, reason),
    where reason is an `x509.ReasonFlags` member name such as "key_compromise",
    "superseded" or "cessation_of_operation", or None for no reason. "unspecified"
    is written as no reason extension (RFC 5280 section 5.3.1). Raises ValueError for
    an unknown reason, a naive datetime, a non-positive serial or bad numbers.
    """
    if next_update_hours <= 0:
        raise ValueError(
            f"next_update_hours is {next_update_hours}; pass a positive number of hours."
        )
    # RFC 5280 section 5.2.3: the CRL number is a non-negative integer of at most 20 octets.
    if not 0 <= crl_number < 2**159:
        raise ValueError(
            f"crl_number {crl_number} is out of range; pass a non-negative integer below 2**159."
        )

    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - CLOCK_SKEW_ALLOWANCE)
        .next_update(now + datetime.timedelta(hours=next_update_hours))
        .add_extension(_authority_key_identifier(ca_cert), critical=False)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
    )
    for serial_number, revoked_at, reason in revoked:
        builder = builder.add_revoked_certificate(
            _revoked_certificate(serial_number, revoked_at, reason)
        )
    return sign_builder(builder, ca_key)


def _revoked_certificate(
    serial_number: int, revoked_at: datetime.datetime, reason: str | None
) -> x509.RevokedCertificate:
    if serial_number <= 0:
        raise ValueError(
            f"Revoked serial number {serial_number} is not positive; pass the serial "
            "number of a certificate issued by this CA."
        )
    if revoked_at.tzinfo is None or revoked_at.utcoffset() is None:
        raise ValueError(
            f"Revocation time {revoked_at.isoformat()} for serial {serial_number:x} has no "
            "timezone; pass a timezone-aware datetime."
        )

    builder = (
        x509.RevokedCertificateBuilder()
        .serial_number(serial_number)
        .revocation_date(revoked_at.astimezone(datetime.UTC))
    )
    if reason is not None:
        flag = _CRL_REASONS.get(reason)
        if flag is None:
            raise ValueError(
                f"Revocation reason {reason!r} for serial {serial_number:x} is unknown; "
                f"use one of {', '.join(sorted(_CRL_REASONS))} or None."
            )
        if flag is not x509.ReasonFlags.unspecified:
            builder = builder.add_extension(x509.CRLReason(flag), critical=False)
    return builder.build()


# --- PEM and identifiers ----------------------------------------------------------------


def cert_to_pem(cert: x509.Certificate) -> str:
    """Return the certificate as PEM text."""
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def load_certificate(pem: str | bytes) -> x509.Certificate:
    """Load exactly one PEM certificate. Raises ValueError for none or several."""
    certificates = load_certificates(pem)
    if len(certificates) != 1:
        raise ValueError(
            f"PEM text contains {len(certificates)} certificates, but one was expected; "
            "pass a single certificate or use load_certificates for a chain."
        )
    return certificates[0]


def load_certificates(pem: str | bytes) -> list[x509.Certificate]:
    """Load every PEM certificate in `pem`, in order (a chain). Raises ValueError for none."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    return x509.load_pem_x509_certificates(data)


def private_key_to_pem(key: PrivateKeyTypes, passphrase: bytes | None) -> bytes:
    """Serialize `key` as PKCS#8 PEM, encrypted with `passphrase` when one is given."""
    encryption: serialization.KeySerializationEncryption
    if passphrase is None:
        encryption = serialization.NoEncryption()
    elif not passphrase:
        raise ValueError(
            "passphrase is empty; pass None for an unencrypted key or a non-empty passphrase."
        )
    else:
        encryption = serialization.BestAvailableEncryption(passphrase)
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=encryption,
    )


def load_private_key(pem: bytes, passphrase: bytes | None) -> PrivateKeyTypes:
    """Load a PEM private key. Raises ValueError or TypeError on a wrong or missing passphrase."""
    return serialization.load_pem_private_key(pem, password=passphrase)


def serial_hex(cert: x509.Certificate) -> str:
    """Return the serial number as lowercase hex without separators or leading zeros."""
    return format(cert.serial_number, "x")


def key_id_hex(cert: x509.Certificate) -> str:
    """Return the Subject Key Identifier as lowercase hex. Raises ValueError when absent."""
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        raise ValueError(
            f"Certificate '{cert.subject.rfc4514_string()}' (serial {serial_hex(cert)}) has "
            "no Subject Key Identifier extension; reissue it with one."
        ) from None
    return ski.digest.hex()


def authority_key_id_hex(cert: x509.Certificate) -> str | None:
    """Return the Authority Key Identifier's keyIdentifier as lowercase hex, or None."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    if aki.key_identifier is None:
        return None
    return aki.key_identifier.hex()


def common_name_for(product_id: str) -> str:
    """Return the subject commonName for a Product ID.

    That is the Product ID itself, or its UUID part when the Product ID is
    longer than the 64-character commonName limit of RFC 5280 (a model number
    over 27 characters). The SAN URI always carries the whole Product ID.
    """
    if len(product_id) <= MAX_COMMON_NAME_LENGTH:
        return product_id
    return product_id.rpartition(":")[2]


def product_id_from_certificate(cert: x509.Certificate) -> str | None:
    """Return the Product ID of an EC certificate, or None if it does not name one.

    The Product ID is the single subject commonName, accepted only when the SAN contains
    exactly one URI starting with `EC_URI_PREFIX` and that URI names the same Product ID.
    """
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(common_names) != 1:
        return None
    common_name = common_names[0].value
    if not isinstance(common_name, str):
        return None

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    ec_uris = [
        uri
        for uri in san.get_values_for_type(x509.UniformResourceIdentifier)
        if uri.startswith(EC_URI_PREFIX)
    ]
    if len(ec_uris) != 1:
        return None
    product_id = ec_uris[0][len(EC_URI_PREFIX):]
    if common_name != common_name_for(product_id):
        return None
    return product_id
