"""Per-tenant PKI (tenant schema): the issuing CA and the certificates it issued."""

from django.db import models
from django.db.models import Q


class IssuingCA(models.Model):
    """One issuing CA of this tenant, signed by the deployment root CA.

    Exactly one row is active: it signs new certificates. A rotation retires
    the active CA; a retired CA still signs its CRL and its certificates stay
    trusted until ``trusted_until``, so its ECs can renew under the new CA.
    """

    certificate_pem = models.TextField()
    # For the software backend, the PEM key encrypted with ZTSP_DATA_KEYS; for
    # an HSM or KMS backend, that backend's key reference (see pki.signers).
    private_key_encrypted = models.TextField()
    key_backend = models.CharField(max_length=32, default="software")
    key_id = models.CharField(max_length=64, unique=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    # Null while trusted without limit (the active CA); set by a rotation.
    trusted_until = models.DateTimeField(null=True, blank=True)
    # Monotonic CRL number (RFC 5280 section 5.2.3), incremented per CRL built.
    crl_number = models.BigIntegerField(default=0)
    # The last CRL built, served again until a revocation changes the marker
    # or it ages; anonymous CRL downloads then cost a read, not a signature.
    crl_der = models.BinaryField(blank=True, default=b"")
    crl_revocation_marker = models.CharField(max_length=64, blank=True)
    crl_built_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "issuing CA"
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="one_active_issuing_ca"),
        ]

    def __str__(self) -> str:
        return f"Issuing CA {self.key_id[:16]}"


class IssuedCertificate(models.Model):
    """An EC certificate issued by this tenant's CA."""

    class Source(models.TextChoices):
        ONBOARD = "onboard", "Onboard request"
        TUNNEL_RENEWAL = "tunnel_renewal", "Renewal over the tunnel"
        EST_ENROLL = "est_enroll", "EST simpleenroll"
        EST_REENROLL = "est_reenroll", "EST simplereenroll"

    class RevocationReason(models.TextChoices):
        SUPERSEDED = "superseded", "Superseded"
        KEY_COMPROMISE = "key_compromise", "Key compromise"
        CESSATION_OF_OPERATION = "cessation_of_operation", "Cessation of operation"

    serial_hex = models.CharField(max_length=64, unique=True)
    product_id = models.CharField(max_length=128, db_index=True)
    edge_controller = models.ForeignKey(
        "onboarding.EdgeController", on_delete=models.PROTECT, related_name="certificates"
    )
    # One certificate per approved onboard request: a task that runs twice
    # (worker killed after signing, message redelivered) cannot issue two.
    # Null for a renewal, which is authenticated by the certificate it renews.
    onboard_request = models.OneToOneField(
        "onboarding.OnboardRequest", on_delete=models.PROTECT, related_name="certificate", null=True, blank=True
    )
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.ONBOARD)
    renewal_of = models.OneToOneField(
        "self", on_delete=models.PROTECT, related_name="renewed_by", null=True, blank=True
    )
    issuing_ca = models.ForeignKey(IssuingCA, on_delete=models.PROTECT, related_name="issued")
    certificate_pem = models.TextField()
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    issued_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revocation_reason = models.CharField(max_length=32, choices=RevocationReason.choices, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["product_id"], condition=Q(revoked_at__isnull=True), name="one_active_certificate_per_product"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product_id} #{self.serial_hex}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
