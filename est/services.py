"""EST (RFC 7030) enrollment of ECs at a Director tenant.

EST is a second way in for an EC, beside the JSON onboard API, for firmware
that ships a standard EST client. ``simpleenroll`` submits an ordinary onboard
request, which the tenant admin approves like any other. ``simplereenroll``
renews the certificate that authenticated the TLS connection. Every function
runs in the tenant's schema.
"""

from __future__ import annotations

import base64
import binascii
import logging
import textwrap
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from audit.services import Actor
from onboarding.models import OnboardRequest
from onboarding.services import submit_onboard_request
from pki import crypto
from pki.models import IssuedCertificate
from pki.services import RenewalRefused, renew_certificate, trust_bundle_pem, trusted_issuing_cas

logger = logging.getLogger(__name__)

# Seconds in the Retry-After header of a 202 while the tenant admin has not
# approved the request yet (RFC 7030 section 4.2.3).
RETRY_AFTER_SECONDS = 30


class EnrollmentRejected(ValueError):
    """An EST request that cannot be granted; ``code``/``detail`` go to the EC."""

    def __init__(self, code: str, detail: str):
        self.code = code
        self.detail = detail
        super().__init__(detail)


@dataclass(frozen=True)
class Enrollment:
    """The onboard request behind a ``simpleenroll``, and its certificate once issued."""

    onboard_request: OnboardRequest
    certificate: IssuedCertificate | None


@dataclass(frozen=True)
class ClientCertificate:
    """An EC certificate of this tenant that a TLS client presented."""

    serial_hex: str
    product_id: str


def certs_only_pkcs7(certificates: list[x509.Certificate]) -> bytes:
    """Return a DER certs-only PKCS#7 of ``certificates``, base64-encoded in 76-character lines.

    RFC 8951 section 3 makes base64 the encoding of every EST body, whatever
    the Content-Transfer-Encoding header contains.
    """
    return base64.encodebytes(pkcs7.serialize_certificates(certificates, Encoding.DER))


def ca_certificates() -> list[x509.Certificate]:
    """Return the certificates of ``/cacerts``: this tenant's trusted issuing CAs (active first), then the root CA."""
    return crypto.load_certificates(trust_bundle_pem())


def csr_pem_from_body(body: bytes) -> str:
    """Return the CSR of an EST request body as PEM.

    The body is base64 of the DER PKCS#10 (RFC 7030 section 4.2.1), or a PEM
    CSR. Spaces, tabs and line breaks in the base64 are ignored, as RFC 8951
    section 3.1 asks of receivers. Only the encoding is checked here, and
    :func:`pki.crypto.validate_csr` checks the CSR itself when the request is
    submitted. Raises :class:`pki.crypto.CSRError` (``csr_malformed``) for an
    empty body, a body that is not ASCII or base64 that does not decode.
    """
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise crypto.CSRError(
            crypto.CSR_MALFORMED,
            "The request body is not ASCII, so it is not base64; send the DER CSR base64-encoded "
            "(Content-Type: application/pkcs10).",
        ) from None
    if "-----BEGIN" in text:
        return text

    compact = "".join(text.split())
    if not compact:
        raise crypto.CSRError(
            crypto.CSR_MALFORMED,
            "The request body is empty; send the DER CSR base64-encoded (Content-Type: application/pkcs10).",
        )
    try:
        der = base64.b64decode(compact, validate=True)
    except binascii.Error as error:
        raise crypto.CSRError(
            crypto.CSR_MALFORMED,
            f"The request body is not valid base64 ({error}); send the DER CSR base64-encoded "
            "(Content-Type: application/pkcs10).",
        ) from error
    lines = textwrap.wrap(base64.b64encode(der).decode("ascii"), 64)
    return "-----BEGIN CERTIFICATE REQUEST-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE REQUEST-----\n"


def enroll(product_id: str, csr_pem: str, *, source_address: str | None) -> Enrollment:
    """Submit the onboard request of a ``simpleenroll``, or find the one for the same CSR, and return its state.

    The certificate is issued by the Celery task after the tenant admin
    approves, so the EC repeats the same request until it gets the
    certificate. Raises :class:`onboarding.services.OnboardRejected` for a
    bad Product ID or CSR, and :class:`EnrollmentRejected` when the request
    was rejected or superseded or its certificate was revoked.
    """
    result = submit_onboard_request(product_id, csr_pem, facts={}, source_address=source_address,
                                    channel=OnboardRequest.Channel.EST)
    onboard_request = result.request
    status = onboard_request.status
    if status == OnboardRequest.Status.REJECTED:
        raise EnrollmentRejected(
            "enrollment_rejected",
            f"The tenant admin rejected onboard request {onboard_request.pk} for {onboard_request.product_id}; "
            "ask the admin, then enroll with a new CSR.",
        )
    if status == OnboardRequest.Status.SUPERSEDED:
        raise EnrollmentRejected(
            "enrollment_superseded",
            f"Onboard request {onboard_request.pk} for {onboard_request.product_id} was superseded by a later "
            "request of the same EC; enroll with the CSR of the latest request.",
        )
    if status != OnboardRequest.Status.ISSUED:
        return Enrollment(onboard_request, None)

    certificate = IssuedCertificate.objects.get(onboard_request=onboard_request)
    if certificate.revoked_at is not None:
        # Returning a revoked certificate would leave the EC with one it cannot use.
        raise EnrollmentRejected(
            "certificate_revoked",
            f"Certificate {certificate.serial_hex} issued for this CSR is revoked "
            f"({certificate.revocation_reason or 'no reason given'}); re-enroll with the current certificate "
            "at /.well-known/est/simplereenroll, or enroll with a new CSR.",
        )
    return Enrollment(onboard_request, certificate)


def identify_client_certificate(certificate_pem: str) -> ClientCertificate:
    """Check that a TLS client certificate was issued by a trusted issuing CA of this tenant and names an EC.

    The TLS server checks the chain only up to the root CA, which every
    tenant shares, so this check is what keeps tenant B's certificate out of
    tenant A. The Authority Key Identifier selects the issuing CA, and the
    signature must verify with that CA's key. Raises
    :class:`EnrollmentRejected`.
    """
    try:
        certificate = crypto.load_certificate(certificate_pem)
    except ValueError as error:
        raise EnrollmentRejected("invalid_client_certificate",
                                f"The TLS client certificate could not be read ({error}).") from error

    not_ours = EnrollmentRejected(
        "unknown_issuer",
        f"Client certificate {crypto.serial_hex(certificate)} was not issued by a CA of this tenant; "
        "re-enroll at the tenant that issued it.",
    )
    key_id = crypto.authority_key_id_hex(certificate)
    issuing_ca = trusted_issuing_cas().filter(key_id=key_id).first() if key_id else None
    if issuing_ca is None:
        raise not_ours
    try:
        certificate.verify_directly_issued_by(crypto.load_certificate(issuing_ca.certificate_pem))
    except (ValueError, TypeError, InvalidSignature) as error:
        # The key id matches but the signature or the issuer name does not: a forgery or a key id clash.
        logger.warning("Client certificate %s names issuing CA %s but does not verify with it: %s",
                       crypto.serial_hex(certificate), issuing_ca.key_id[:16], error)
        raise not_ours from error

    product_id = crypto.product_id_from_certificate(certificate)
    if product_id is None:
        raise EnrollmentRejected(
            "not_an_ec_certificate",
            f"Client certificate {crypto.serial_hex(certificate)} names no Product ID; "
            "use the EC certificate that this tenant issued.",
        )
    return ClientCertificate(crypto.serial_hex(certificate), product_id)


def reenroll(certificate_pem: str, csr_pem: str, *, tenant, source_address: str | None) -> IssuedCertificate:
    """Renew the certificate a TLS client presented, for a ``simplereenroll``, and return the new one.

    The old certificate is revoked as superseded. Raises
    :class:`EnrollmentRejected` with nothing written when the certificate is
    not this tenant's active EC certificate or the CSR is bad (codes
    ``csr_*``).
    """
    client = identify_client_certificate(certificate_pem)
    try:
        return renew_certificate(
            client.serial_hex, csr_pem, tenant=tenant, source=IssuedCertificate.Source.EST_REENROLL,
            actor=Actor.for_device(client.product_id, source_address),
        )
    except RenewalRefused as error:
        raise EnrollmentRejected(error.code, error.detail) from error
