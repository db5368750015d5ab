"""Onboarding (tenant schema): the tenant's Edge Controllers and their onboard requests."""

import uuid

from django.db import models
from django.db.models.functions import Lower


class Tag(models.Model):
    name = models.CharField(max_length=64, unique=True)

    class Meta:
        constraints = [
            # "East" and "east" are one tag.
            models.UniqueConstraint(Lower("name"), name="tag_name_unique_ignoring_case"),
        ]

    def __str__(self) -> str:
        return self.name


class EdgeController(models.Model):
    """An Edge Controller as this tenant records it, from its first onboard request on."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        ONBOARDED = "onboarded", "Onboarded"
        REJECTED = "rejected", "Rejected"
        # Taken out of service by an admin: its certificate is revoked.
        DECOMMISSIONED = "decommissioned", "Decommissioned"

    product_id = models.CharField("Product ID", max_length=128, unique=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    tags = models.ManyToManyField(Tag, blank=True, related_name="edge_controllers")
    facts = models.JSONField(default=dict, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)
    last_source_address = models.GenericIPAddressField(null=True, blank=True)

    # Management tunnel status, written by the tunnel gateway.
    online = models.BooleanField(default=False)
    tunnel_connected_at = models.DateTimeField(null=True, blank=True)
    tunnel_disconnected_at = models.DateTimeField(null=True, blank=True)
    # The address the EC's last tunnel came from, as the gateway saw it.
    tunnel_address = models.GenericIPAddressField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    firmware = models.CharField(max_length=64, blank=True)
    applied_config_version = models.IntegerField(default=0)

    class Meta:
        verbose_name = "Edge Controller"
        indexes = [
            # The onboarded list: WHERE state = 'onboarded' ORDER BY id DESC, read from the cursor on.
            models.Index(fields=["state", "id"], name="edge_controller_state_id"),
        ]

    def __str__(self) -> str:
        return self.product_id


class OnboardRequest(models.Model):
    """One onboard request: a CSR and device facts sent by an EC, and the admin's decision."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved, certificate being issued"
        ISSUED = "issued", "Certificate issued"
        REJECTED = "rejected", "Rejected"
        SUPERSEDED = "superseded", "Superseded by a later request"

    class Channel(models.TextChoices):
        ONBOARD_API = "onboard_api", "Onboard API"
        EST = "est", "EST simpleenroll"

    class DeviceProof(models.TextChoices):
        VERIFIED = "verified", "Device credential proven at lookup"
        MISSING = "missing", "Not proven, although the product has a device credential"
        NOT_REGISTERED = "not_registered", "No device credential was imported"

    # The request_id of the API.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    edge_controller = models.ForeignKey(EdgeController, on_delete=models.CASCADE, related_name="onboard_requests")
    product_id = models.CharField("Product ID", max_length=128, db_index=True)
    csr_pem = models.TextField()
    csr_fingerprint = models.CharField(max_length=64)
    facts = models.JSONField(default=dict, blank=True)
    source_address = models.GenericIPAddressField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    # Set when the EC already had a pending request or a certificate with
    # another key (a factory reset, or an impostor): the admin must look.
    conflict = models.BooleanField(default=False)
    # Set when the EC already has a certificate and this CSR carries another
    # key (a factory reset, or an impostor). A conflict without it is the same
    # key enrolling again, as after a certificate expired while offline.
    key_change = models.BooleanField(default=False)
    # How the EC sent the request; the certificate's source follows it.
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.ONBOARD_API)
    # Whether the EC proved possession of the per-device credential the vendor
    # imported, through the lookup proof token it sent. "missing" means
    # someone with the tenant access key but not the device's credential may
    # have sent it, so the admin must look.
    device_proof = models.CharField(max_length=16, choices=DeviceProof.choices, default=DeviceProof.NOT_REGISTERED,
                                    db_default=DeviceProof.NOT_REGISTERED)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=150, blank=True)
    decision_note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The pending list: WHERE status = 'pending' ORDER BY created_at, id, read from the cursor on.
            models.Index(fields=["status", "created_at", "id"], name="onboard_request_status_created"),
        ]
        constraints = [
            # The same CSR from the same EC is the same request (idempotent retries).
            models.UniqueConstraint(fields=["product_id", "csr_fingerprint"], name="onboard_request_per_csr"),
        ]

    def __str__(self) -> str:
        return f"{self.product_id} {self.status} ({self.id})"
