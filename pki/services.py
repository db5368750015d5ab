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
from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from audit.services import Actor, record_event
from common import tokens
from pki import crypto
from pki.models import IssuedCertificate, IssuingCA
from tenants.models import DeploymentRootCA

logger = logging.getLogger(__name__)


def _encrypt_key(private_key) -> str:
    return tokens.encrypt(crypto.private_key_to_pem(private_key, None))


def _decrypt_key(ciphertext: str):
    return crypto.load_private_key(tokens.decrypt(ciphertext), None)


# Decrypted issuing CA keys by key id: a worker loads each CA key once per
# process, not once per certificate. A key id (the SKI) names one key for good.
_issuing_keys: dict[str, object] = {}


def _issuing_key(issuing_ca: IssuingCA):
    key = _issuing_keys.get(issuing_ca.key_id)
    if key is None:
        key = _issuing_keys[issuing_ca.key_id] = _decrypt_key(issuing_ca.private_key_encrypted)
    return key


def ensure_root_ca() -> DeploymentRootCA:
    """Return the deployment root CA, creating it on first use.

    Concurrent first calls race on the unique key id; the loser reads the
    winner's row, so there is only ever one root.
    """
    root = DeploymentRootCA.objects.order_by("pk").first()
    if root is not None:
        return root
    key, cert = crypto.create_root_ca(
        f"{settings.ZTSP_ORGANIZATION} Root CA", settings.ZTSP_ORGANIZATION, valid_days=settings.ZTSP_ROOT_CA_DAYS
    )
    with transaction.atomic():
        # A table lock makes the "first one wins" rule hold across processes.
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {DeploymentRootCA._meta.db_table} IN EXCLUSIVE MODE")
        root = DeploymentRootCA.objects.order_by("pk").first()
        if root is None:
            root = DeploymentRootCA.objects.create(
                certificate_pem=crypto.cert_to_pem(cert),
                private_key_encrypted=_encrypt_key(key),
                key_id=crypto.key_id_hex(cert),
            )
            record_event("root_ca.create", actor=Actor.system("pki"), object_type="root_ca", object_id=root.key_id)
            logger.info("Created deployment root CA %s", root.key_id)
    return root


def root_ca_material() -> tuple[object, x509.Certificate]:
    root = ensure_root_ca()
    return _decrypt_key(root.private_key_encrypted), crypto.load_certificate(root.certificate_pem)


def crl_url_for(tenant) -> str | None:
    from tenants.services import management_url_for

    domain = tenant.get_primary_domain()
    return f"{management_url_for(domain.domain)}/api/v1/pki/crl" if domain else None


def create_issuing_ca(tenant) -> IssuingCA:
    """Create the issuing CA of ``tenant``; the current schema must be the tenant's."""
    root_key, root_cert = root_ca_material()
    key, cert = crypto.create_issuing_ca(
        root_key,
        root_cert,
        f"{tenant.name} Issuing CA ({tenant.schema_name})",
        settings.ZTSP_ORGANIZATION,
        valid_days=settings.ZTSP_ISSUING_CA_DAYS,
        crl_url=None,
    )
    issuing_ca = IssuingCA.objects.create(
        certificate_pem=crypto.cert_to_pem(cert),
        private_key_encrypted=_encrypt_key(key),
        key_id=crypto.key_id_hex(cert),
    )
    record_event("issuing_ca.create", actor=Actor.system("pki"), object_type="issuing_ca",
                 object_id=issuing_ca.key_id)
    logger.info("Created issuing CA %s for tenant %s", issuing_ca.key_id, tenant.schema_name)
    return issuing_ca


def active_issuing_ca() -> IssuingCA:
    return IssuingCA.objects.get(is_active=True)


def ca_chain_pem() -> str:
    """Return this tenant's CA chain as PEM: the issuing CA, then the root CA."""
    return active_issuing_ca().certificate_pem + ensure_root_ca().certificate_pem


def issue_certificate(onboard_request, *, tenant) -> IssuedCertificate:
    """Sign the CSR of an approved onboard request and store the certificate.

    Must run inside a transaction that holds the request's row lock. Any other
    active certificate of the same EC is revoked as superseded, so the EC has
    exactly one active certificate afterwards.
    """
    issuing_ca = active_issuing_ca()
    ca_key = _issuing_key(issuing_ca)
    ca_cert = crypto.load_certificate(issuing_ca.certificate_pem)
    csr = x509.load_pem_x509_csr(onboard_request.csr_pem.encode())

    certificate = crypto.issue_ec_certificate(
        ca_key, ca_cert, csr, onboard_request.product_id,
        valid_days=settings.ZTSP_EC_CERT_DAYS, crl_url=crl_url_for(tenant),
    )
    now = timezone.now()
    superseded = list(
        IssuedCertificate.objects.select_for_update()
        .filter(product_id=onboard_request.product_id, revoked_at__isnull=True)
        .values_list("serial_hex", flat=True)
    )
    IssuedCertificate.objects.filter(serial_hex__in=superseded).update(
        revoked_at=now, revocation_reason=IssuedCertificate.RevocationReason.SUPERSEDED
    )
    issued = IssuedCertificate.objects.create(
        serial_hex=crypto.serial_hex(certificate),
        product_id=onboard_request.product_id,
        edge_controller_id=onboard_request.edge_controller_id,
        onboard_request=onboard_request,
        issuing_ca=issuing_ca,
        certificate_pem=crypto.cert_to_pem(certificate),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )
    record_event("certificate.issue", actor=Actor.system("celery"), object_type="certificate",
                 object_id=issued.serial_hex,
                 details={"product_id": issued.product_id, "request_id": str(onboard_request.pk),
                          "superseded": superseded})
    logger.info("Issued certificate %s for %s (request %s)", issued.serial_hex, issued.product_id,
                onboard_request.pk)
    return issued


@transaction.atomic
def revoke_certificate(certificate: IssuedCertificate, reason: str, *, actor: Actor) -> IssuedCertificate:
    certificate = IssuedCertificate.objects.select_for_update().get(pk=certificate.pk)
    if certificate.revoked_at is None:
        certificate.revoked_at = timezone.now()
        certificate.revocation_reason = reason
        certificate.save(update_fields=["revoked_at", "revocation_reason"])
        record_event("certificate.revoke", actor=actor, object_type="certificate",
                     object_id=certificate.serial_hex, details={"reason": reason})
    return certificate


# A served CRL is reused for this long unless a revocation happens first (seconds).
CRL_REUSE_SECONDS = 300


def _revocation_marker(issuing_ca: IssuingCA) -> str:
    stats = IssuedCertificate.objects.filter(issuing_ca=issuing_ca, revoked_at__isnull=False).aggregate(
        count=models.Count("pk"), latest=models.Max("revoked_at")
    )
    return f"{stats['count']}:{stats['latest'].timestamp() if stats['latest'] else 0}"


def current_crl_der(*, next_update_hours: int = 24) -> bytes:
    """Return this tenant's CRL, signing a new one only after a revocation or when the last one aged.

    Unauthenticated clients fetch the CRL, so serving it must not sign and
    write on every request.
    """
    issuing_ca = active_issuing_ca()
    marker = _revocation_marker(issuing_ca)
    fresh_after = timezone.now() - timedelta(seconds=CRL_REUSE_SECONDS)
    if issuing_ca.crl_der and issuing_ca.crl_revocation_marker == marker and issuing_ca.crl_built_at > fresh_after:
        return bytes(issuing_ca.crl_der)

    from cryptography.hazmat.primitives.serialization import Encoding

    with transaction.atomic():
        issuing_ca = IssuingCA.objects.select_for_update().get(pk=issuing_ca.pk)
        marker = _revocation_marker(issuing_ca)
        if issuing_ca.crl_der and issuing_ca.crl_revocation_marker == marker and issuing_ca.crl_built_at > fresh_after:
            # Another request rebuilt it while this one waited for the lock.
            return bytes(issuing_ca.crl_der)
        revoked = [
            (int(serial, 16), revoked_at.astimezone(UTC), reason or None)
            for serial, revoked_at, reason in IssuedCertificate.objects.filter(
                issuing_ca=issuing_ca, revoked_at__isnull=False, not_after__gt=datetime.now(UTC)
            ).values_list("serial_hex", "revoked_at", "revocation_reason")
        ]
        crl = crypto.build_crl(
            _issuing_key(issuing_ca),
            crypto.load_certificate(issuing_ca.certificate_pem),
            revoked,
            next_update_hours=next_update_hours,
            crl_number=issuing_ca.crl_number + 1,
        )
        issuing_ca.crl_number += 1
        issuing_ca.crl_der = crl.public_bytes(Encoding.DER)
        issuing_ca.crl_revocation_marker = marker
        issuing_ca.crl_built_at = timezone.now()
        issuing_ca.save(update_fields=["crl_number", "crl_der", "crl_revocation_marker", "crl_built_at"])
    return bytes(issuing_ca.crl_der)
