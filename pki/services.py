"""Certificate authority operations: root CA, tenant issuing CAs, EC certificates, CRLs.

Every function that touches a tenant's CA runs in that tenant's schema (the
caller sets it: the request's tenant, a Celery task's schema, or
``schema_context``). The root CA lives in the public schema, which is on the
search path of every tenant connection.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import Actor, record_event, record_events_each
from common.db import copy_instances
from pki import crypto, signers
from pki.models import IssuedCertificate, IssuingCA
from tenants.models import DeploymentRootCA

logger = logging.getLogger(__name__)

# CA keys are EC P-384 (signing with SHA-384).
CA_KEY_KIND = "ec-p384"


class RenewalRefused(ValueError):
    """A renewal that cannot be granted; ``code``/``detail`` go to the EC."""

    def __init__(self, code: str, detail: str):
        self.code = code
        self.detail = detail
        super().__init__(detail)


# Loaded signers by CA key id: a worker loads (decrypts) each CA key once per
# process, not once per certificate. A key id (the SKI) names one key for good.
_signers: dict[str, signers.CASigner] = {}


def signer_for(ca: IssuingCA | DeploymentRootCA) -> signers.CASigner:
    signer = _signers.get(ca.key_id)
    if signer is None:
        signer = _signers[ca.key_id] = signers.backend(ca.key_backend).load(ca.private_key_encrypted)
    return signer


# --- Root CA -----------------------------------------------------------------------------


def ensure_root_ca() -> DeploymentRootCA:
    """Return the deployment root CA, creating it on first use.

    Concurrent first calls race on a table lock; the loser reads the
    winner's row, so there is only ever one root.
    """
    root = DeploymentRootCA.objects.order_by("pk").first()
    if root is not None:
        return root
    backend = signers.backend()
    reference, signer = backend.generate(CA_KEY_KIND)
    _, cert = crypto.create_root_ca(
        f"{settings.ZTSP_ORGANIZATION} Root CA", settings.ZTSP_ORGANIZATION,
        valid_days=settings.ZTSP_ROOT_CA_DAYS, signer=signer,
    )
    with transaction.atomic():
        # A table lock makes the "first one wins" rule hold across processes.
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {DeploymentRootCA._meta.db_table} IN EXCLUSIVE MODE")
        root = DeploymentRootCA.objects.order_by("pk").first()
        if root is None:
            root = DeploymentRootCA.objects.create(
                certificate_pem=crypto.cert_to_pem(cert),
                private_key_encrypted=reference,
                key_backend=backend.name,
                key_id=crypto.key_id_hex(cert),
            )
            record_event("root_ca.create", actor=Actor.system("pki"), object_type="root_ca", object_id=root.key_id)
            logger.info("Created deployment root CA %s", root.key_id)
    return root


def root_ca_material() -> tuple[signers.CASigner, x509.Certificate]:
    """Return the root CA's signer and certificate."""
    root = ensure_root_ca()
    return signer_for(root), crypto.load_certificate(root.certificate_pem)


# --- Issuing CAs -------------------------------------------------------------------------


def crl_url_for(tenant, issuing_ca: IssuingCA) -> str | None:
    """Return the CRL distribution point of certificates issued by ``issuing_ca``.

    Each CA has its own URL, so that after a rotation the certificates of the
    retired CA still point at that CA's CRL.
    """
    from tenants.services import management_url_for

    domain = tenant.get_primary_domain()
    return f"{management_url_for(domain.domain)}/api/v1/pki/crl/{issuing_ca.key_id}" if domain else None


def _new_issuing_ca(tenant) -> IssuingCA:
    root_signer, root_cert = root_ca_material()
    backend = signers.backend()
    reference, signer = backend.generate(CA_KEY_KIND)
    _, cert = crypto.create_issuing_ca(
        root_signer,
        root_cert,
        f"{tenant.name} Issuing CA ({tenant.schema_name})",
        settings.ZTSP_ORGANIZATION,
        valid_days=settings.ZTSP_ISSUING_CA_DAYS,
        crl_url=None,
        public_key=signer.public_key(),
    )
    key_id = crypto.key_id_hex(cert)
    _signers[key_id] = signer
    return IssuingCA(
        certificate_pem=crypto.cert_to_pem(cert),
        private_key_encrypted=reference,
        key_backend=backend.name,
        key_id=key_id,
    )


def create_issuing_ca(tenant) -> IssuingCA:
    """Create the issuing CA of ``tenant``; the current schema must be the tenant's."""
    issuing_ca = _new_issuing_ca(tenant)
    issuing_ca.save()
    record_event("issuing_ca.create", actor=Actor.system("pki"), object_type="issuing_ca",
                 object_id=issuing_ca.key_id)
    logger.info("Created issuing CA %s for tenant %s", issuing_ca.key_id, tenant.schema_name)
    return issuing_ca


def rotate_issuing_ca(tenant, *, actor: Actor, overlap: timedelta | None = None) -> IssuingCA:
    """Make a new active issuing CA; the old one stays trusted for ``overlap``.

    New certificates come from the new CA at once. During the overlap the
    gateway accepts both CAs' certificates and each CA keeps serving its CRL;
    the renewal reminder requests a renewal from every EC still on the old CA.
    """
    if overlap is None:
        overlap = timedelta(days=settings.ZTSP_CA_OVERLAP_DAYS)
    if overlap < timedelta(0):
        raise ValueError(f"The overlap {overlap} is negative; pass zero or more.")
    new_ca = _new_issuing_ca(tenant)
    now = timezone.now()
    with transaction.atomic():
        old = IssuingCA.objects.select_for_update().filter(is_active=True).first()
        if old is not None:
            old.is_active = False
            old.retired_at = now
            old.trusted_until = now + overlap
            old.save(update_fields=["is_active", "retired_at", "trusted_until"])
        new_ca.save()
        record_event("issuing_ca.rotate", actor=actor, object_type="issuing_ca", object_id=new_ca.key_id,
                     details={"retired": old.key_id if old else None,
                              "old_trusted_until": old.trusted_until.isoformat() if old else None})
    logger.info("Rotated issuing CA of %s: %s is active, %s trusted until %s", tenant.schema_name,
                new_ca.key_id, old.key_id if old else "-", old.trusted_until if old else "-")
    return new_ca


def active_issuing_ca() -> IssuingCA:
    return IssuingCA.objects.get(is_active=True)


def trusted_issuing_cas():
    """Return the issuing CAs whose certificates are accepted now: the active one and retired ones in overlap."""
    return IssuingCA.objects.filter(Q(trusted_until__isnull=True) | Q(trusted_until__gt=timezone.now()))


def ca_chain_pem(issuing_ca: IssuingCA | None = None) -> str:
    """Return a CA chain as PEM: the issuing CA (by default the active one), then the root CA."""
    issuing_ca = issuing_ca or active_issuing_ca()
    return issuing_ca.certificate_pem + ensure_root_ca().certificate_pem


def trust_bundle_pem() -> str:
    """Return every trusted issuing CA of this tenant (active first) and the root CA, as PEM."""
    cas = trusted_issuing_cas().order_by("-is_active", "-created_at")
    return "".join(ca.certificate_pem for ca in cas) + ensure_root_ca().certificate_pem


# --- EC certificates -----------------------------------------------------------------------


# Parsed issuing CA certificates by their PEM text, so that each certificate
# issued does not parse its CA's certificate again.
_ca_certificates: dict[str, x509.Certificate] = {}


def _ca_certificate(issuing_ca: IssuingCA) -> x509.Certificate:
    ca_certificate = _ca_certificates.get(issuing_ca.certificate_pem)
    if ca_certificate is None:
        ca_certificate = _ca_certificates[issuing_ca.certificate_pem] = crypto.load_certificate(
            issuing_ca.certificate_pem)
    return ca_certificate


def _issue(csr: x509.CertificateSigningRequest, *, product_id: str, edge_controller_id: int, tenant,
           source: str, onboard_request=None, renewal_of: IssuedCertificate | None = None,
           actor: Actor) -> IssuedCertificate:
    """Sign ``csr`` with the active issuing CA and store it; other active certificates of the EC are superseded.

    Runs inside the caller's transaction.
    """
    issuing_ca = active_issuing_ca()
    certificate = crypto.issue_ec_certificate(
        signer_for(issuing_ca), _ca_certificate(issuing_ca), csr, product_id,
        valid_days=settings.ZTSP_EC_CERT_DAYS, crl_url=crl_url_for(tenant, issuing_ca),
    )
    now = timezone.now()
    superseded = list(
        IssuedCertificate.objects.select_for_update()
        .filter(product_id=product_id, revoked_at__isnull=True)
        .values_list("serial_hex", flat=True)
    )
    IssuedCertificate.objects.filter(serial_hex__in=superseded).update(
        revoked_at=now, revocation_reason=IssuedCertificate.RevocationReason.SUPERSEDED
    )
    issued = IssuedCertificate.objects.create(
        serial_hex=crypto.serial_hex(certificate),
        product_id=product_id,
        edge_controller_id=edge_controller_id,
        onboard_request=onboard_request,
        renewal_of=renewal_of,
        source=source,
        issuing_ca=issuing_ca,
        certificate_pem=crypto.cert_to_pem(certificate),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )
    details = {"product_id": product_id, "source": source, "superseded": superseded,
               "issuing_ca": issuing_ca.key_id}
    if onboard_request is not None:
        details["request_id"] = str(onboard_request.pk)
    record_event("certificate.issue", actor=actor, object_type="certificate", object_id=issued.serial_hex,
                 details=details)
    if superseded:
        _refresh_crls_on_commit()
    logger.info("Issued certificate %s for %s (%s%s)", issued.serial_hex, product_id, source,
                f", request {onboard_request.pk}" if onboard_request is not None else "")
    return issued


def issue_certificate(onboard_request, *, tenant) -> IssuedCertificate:
    """Sign the CSR of an approved onboard request and store the certificate.

    Must run inside a transaction that holds the request's row lock. Any other
    active certificate of the same EC is revoked as superseded, so the EC has
    exactly one active certificate afterwards.
    """
    csr = crypto.parse_csr_pem(onboard_request.csr_pem)
    return _issue(csr, product_id=onboard_request.product_id, edge_controller_id=onboard_request.edge_controller_id,
                  tenant=tenant, source=_source_of(onboard_request), onboard_request=onboard_request,
                  actor=Actor.system("celery"))


def _source_of(onboard_request) -> str:
    if onboard_request.channel == onboard_request.Channel.EST:
        return IssuedCertificate.Source.EST_ENROLL
    return IssuedCertificate.Source.ONBOARD


def issue_certificates(onboard_requests: list, *, tenant) -> list[IssuedCertificate]:
    """Sign the CSRs of many approved onboard requests and store the certificates with one statement per step.

    The same rules as :func:`issue_certificate`, for a batch: the caller holds
    the requests' row locks in its transaction, and each EC's other active
    certificates are revoked as superseded. The rows are written with COPY,
    so the returned instances carry no primary key. Raises ValueError, with
    nothing written, when two requests are for the same EC; issue those one
    by one.
    """
    product_ids = [onboard_request.product_id for onboard_request in onboard_requests]
    if len(set(product_ids)) != len(product_ids):
        raise ValueError("Invalid batch: it contains two onboard requests for one EC; issue them one at a time.")
    if not onboard_requests:
        return []
    issuing_ca = active_issuing_ca()
    signer = signer_for(issuing_ca)
    ca_certificate = _ca_certificate(issuing_ca)
    crl_url = crl_url_for(tenant, issuing_ca)
    signed = [
        crypto.issue_ec_certificate(signer, ca_certificate, crypto.parse_csr_pem(onboard_request.csr_pem),
                                    onboard_request.product_id, valid_days=settings.ZTSP_EC_CERT_DAYS,
                                    crl_url=crl_url)
        for onboard_request in onboard_requests
    ]

    superseded: dict[str, list[str]] = {}
    for product_id, serial in (
        IssuedCertificate.objects.select_for_update()
        .filter(product_id__in=product_ids, revoked_at__isnull=True)
        .values_list("product_id", "serial_hex")
    ):
        superseded.setdefault(product_id, []).append(serial)
    if superseded:
        IssuedCertificate.objects.filter(
            serial_hex__in=[serial for serials in superseded.values() for serial in serials]
        ).update(revoked_at=timezone.now(), revocation_reason=IssuedCertificate.RevocationReason.SUPERSEDED)

    issued = [
        IssuedCertificate(
            serial_hex=crypto.serial_hex(certificate),
            product_id=onboard_request.product_id,
            edge_controller_id=onboard_request.edge_controller_id,
            onboard_request=onboard_request,
            source=_source_of(onboard_request),
            issuing_ca=issuing_ca,
            certificate_pem=crypto.cert_to_pem(certificate),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
        )
        for onboard_request, certificate in zip(onboard_requests, signed, strict=True)
    ]
    copy_instances(IssuedCertificate, issued)
    record_events_each(
        "certificate.issue", actor=Actor.system("celery"), object_type="certificate",
        items=[(certificate.serial_hex, {"product_id": certificate.product_id, "source": certificate.source,
                                         "superseded": superseded.get(certificate.product_id, []),
                                         "issuing_ca": issuing_ca.key_id,
                                         "request_id": str(certificate.onboard_request_id)})
               for certificate in issued],
    )
    if superseded:
        _refresh_crls_on_commit()
    for certificate in issued:
        logger.debug("Issued certificate %s for %s (request %s)", certificate.serial_hex, certificate.product_id,
                     certificate.onboard_request_id)
    logger.info("Issued %d certificates in %s (%d superseded an older one)", len(issued), connection.schema_name,
                len(superseded))
    return issued


def renew_certificate(current_serial_hex: str, csr_pem: str | bytes, *, tenant, source: str,
                      actor: Actor) -> IssuedCertificate:
    """Issue a new certificate to the EC whose active certificate is ``current_serial_hex``.

    The caller has authenticated the EC with that certificate (the tunnel's or
    EST's TLS client certificate). The CSR may carry a new key; its subject
    must still be the EC's Product ID. The old certificate is revoked as
    superseded. Raises :class:`RenewalRefused` with nothing written when the
    certificate is not active, the EC is not onboarded, or the CSR is bad.
    """
    from onboarding.models import EdgeController

    with transaction.atomic():
        current = (
            IssuedCertificate.objects.select_for_update().select_related("edge_controller", "issuing_ca")
            .filter(serial_hex=current_serial_hex).first()
        )
        if current is None:
            raise RenewalRefused("unknown_certificate",
                                 f"Certificate {current_serial_hex} was not issued by this tenant.")
        if current.revoked_at is not None:
            raise RenewalRefused("certificate_revoked",
                                 f"Certificate {current_serial_hex} is revoked; send a new onboard request.")
        if current.not_after <= timezone.now():
            raise RenewalRefused("certificate_expired",
                                 f"Certificate {current_serial_hex} expired at {current.not_after:%Y-%m-%dT%H:%M:%SZ}; "
                                 "send a new onboard request.")
        if current.issuing_ca.trusted_until is not None and current.issuing_ca.trusted_until <= timezone.now():
            raise RenewalRefused("issuing_ca_retired",
                                 f"Certificate {current_serial_hex} comes from a CA that is no longer trusted; "
                                 "send a new onboard request.")
        if current.edge_controller.state != EdgeController.State.ONBOARDED:
            raise RenewalRefused("not_onboarded",
                                 f"EC {current.product_id} is {current.edge_controller.state}; it cannot renew.")
        try:
            csr = crypto.validate_csr(csr_pem, crypto.common_name_for(current.product_id))
        except crypto.CSRError as error:
            raise RenewalRefused(error.code, error.detail) from error
        return _issue(csr, product_id=current.product_id, edge_controller_id=current.edge_controller_id,
                      tenant=tenant, source=source, renewal_of=current, actor=actor)


def certificates_due_for_renewal(*, limit: int = 1000):
    """Active certificates that expire within ZTSP_EC_RENEW_BEFORE_DAYS or come from a retired CA."""
    now = timezone.now()
    due = now + timedelta(days=settings.ZTSP_EC_RENEW_BEFORE_DAYS)
    return (
        IssuedCertificate.objects.filter(revoked_at__isnull=True, not_after__gt=now)
        .filter(Q(not_after__lte=due) | Q(issuing_ca__is_active=False))
        .order_by("not_after")[:limit]
    )


@transaction.atomic
def revoke_certificate(certificate: IssuedCertificate, reason: str, *, actor: Actor) -> IssuedCertificate:
    """Revoke ``certificate`` (a no-op when it already is); the CRL is re-signed after commit."""
    certificate = IssuedCertificate.objects.select_for_update().get(pk=certificate.pk)
    if certificate.revoked_at is None:
        certificate.revoked_at = timezone.now()
        certificate.revocation_reason = reason
        certificate.save(update_fields=["revoked_at", "revocation_reason"])
        record_event("certificate.revoke", actor=actor, object_type="certificate",
                     object_id=certificate.serial_hex, details={"reason": reason, "product_id": certificate.product_id})
        logger.info("Revoked certificate %s of %s (%s)", certificate.serial_hex, certificate.product_id, reason)
        _refresh_crls_on_commit()
    return certificate


# --- CRLs -------------------------------------------------------------------------------------

# A served CRL is reused for this long unless a revocation happens first (seconds).
CRL_REUSE_SECONDS = 300


def _refresh_crls_on_commit() -> None:
    """Re-sign this tenant's CRLs once the revocation is committed, so the next download is current."""
    def refresh():
        try:
            for issuing_ca in trusted_issuing_cas():
                current_crl_der(issuing_ca, max_age_seconds=0)
        except Exception:
            # The CRL is rebuilt on the next download anyway; a failure here must not hide the revocation.
            logger.exception("Re-signing the CRLs of %s after a revocation failed", connection.schema_name)

    transaction.on_commit(refresh)


def _revocation_marker(issuing_ca: IssuingCA) -> str:
    stats = IssuedCertificate.objects.filter(issuing_ca=issuing_ca, revoked_at__isnull=False).aggregate(
        count=models.Count("pk"), latest=models.Max("revoked_at")
    )
    return f"{stats['count']}:{stats['latest'].timestamp() if stats['latest'] else 0}"


def _crl_is_current(issuing_ca: IssuingCA, marker: str, max_age_seconds: int) -> bool:
    if not issuing_ca.crl_der or issuing_ca.crl_revocation_marker != marker or issuing_ca.crl_built_at is None:
        return False
    return issuing_ca.crl_built_at > timezone.now() - timedelta(seconds=max_age_seconds)


def current_crl_der(issuing_ca: IssuingCA | None = None, *, max_age_seconds: int = CRL_REUSE_SECONDS) -> bytes:
    """Return the CRL of ``issuing_ca`` (default: the active CA), re-signing it after a revocation or when aged.

    Unauthenticated clients fetch the CRL, so serving it must not sign and
    write on every request. ``max_age_seconds=0`` forces a new CRL only when
    the revocations changed; a CRL younger than a second is reused.
    """
    issuing_ca = issuing_ca or active_issuing_ca()
    max_age_seconds = max(max_age_seconds, 1)
    marker = _revocation_marker(issuing_ca)
    if _crl_is_current(issuing_ca, marker, max_age_seconds):
        return bytes(issuing_ca.crl_der)

    with transaction.atomic():
        issuing_ca = IssuingCA.objects.select_for_update().get(pk=issuing_ca.pk)
        marker = _revocation_marker(issuing_ca)
        if _crl_is_current(issuing_ca, marker, max_age_seconds):
            # Another process rebuilt it while this one waited for the lock.
            return bytes(issuing_ca.crl_der)
        revoked = [
            (int(serial, 16), revoked_at.astimezone(UTC), reason or None)
            for serial, revoked_at, reason in IssuedCertificate.objects.filter(
                issuing_ca=issuing_ca, revoked_at__isnull=False, not_after__gt=datetime.now(UTC)
            ).values_list("serial_hex", "revoked_at", "revocation_reason")
        ]
        crl = crypto.build_crl(
            signer_for(issuing_ca),
            crypto.load_certificate(issuing_ca.certificate_pem),
            revoked,
            next_update_hours=settings.ZTSP_CRL_NEXT_UPDATE_HOURS,
            crl_number=issuing_ca.crl_number + 1,
        )
        issuing_ca.crl_number += 1
        issuing_ca.crl_der = crl.public_bytes(Encoding.DER)
        issuing_ca.crl_revocation_marker = marker
        issuing_ca.crl_built_at = timezone.now()
        issuing_ca.save(update_fields=["crl_number", "crl_der", "crl_revocation_marker", "crl_built_at"])
    logger.info("Signed CRL number %d of issuing CA %s in %s (%d entries)", issuing_ca.crl_number,
                issuing_ca.key_id[:16], connection.schema_name, len(revoked))
    return bytes(issuing_ca.crl_der)


def refresh_crls(*, max_age_seconds: int | None = None) -> int:
    """Re-sign every trusted CA's CRL of this tenant that is older than ``max_age_seconds``; return how many CAs."""
    if max_age_seconds is None:
        max_age_seconds = settings.ZTSP_CRL_REFRESH_SECONDS
    cas = list(trusted_issuing_cas())
    for issuing_ca in cas:
        current_crl_der(issuing_ca, max_age_seconds=max_age_seconds)
    return len(cas)
