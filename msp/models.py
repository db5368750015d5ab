from django.conf import settings
from django.db import models


class MSP(models.Model):
    """A managed service provider that buys Edge Controllers and runs Directors."""

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=63, unique=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "MSP"
        verbose_name_plural = "MSPs"

    def __str__(self) -> str:
        return self.name


class MSPMembership(models.Model):
    """Links a user of the Provision Server to the one MSP they act for."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="msp_membership")
    msp = models.ForeignKey(MSP, on_delete=models.CASCADE, related_name="memberships")

    class Meta:
        verbose_name = "MSP membership"

    def __str__(self) -> str:
        return f"{self.user} @ {self.msp}"


class MSPApiToken(models.Model):
    """A bearer token for the MSP REST API, stored as a keyed hash."""

    msp = models.ForeignKey(MSP, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    key_id = models.CharField(max_length=32, unique=True)
    key_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "MSP API token"

    def __str__(self) -> str:
        return f"{self.msp} / {self.name} ({self.key_id})"


class TenantRegistration(models.Model):
    """A Director tenant as the Provision Server records it: a URL and an access key.

    The access key is encrypted at rest because the ZTP lookup hands it to
    the tenant's ECs. The Provision Server never reads the Director's own
    tables, so a tenant hosted elsewhere registers exactly like a local one.
    """

    msp = models.ForeignKey(MSP, on_delete=models.PROTECT, related_name="tenant_registrations")
    name = models.CharField(max_length=200)
    # Normalised by msp.urls.normalize_management_url; one Director tenant has one URL.
    management_url = models.URLField(max_length=255, unique=True)
    access_key_encrypted = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["msp", "name"], name="tenant_registration_name_per_msp")]

    def __str__(self) -> str:
        return f"{self.name} ({self.management_url})"


class MSPSignupRequest(models.Model):
    """A request from an organisation to become an MSP, pending until the vendor approves or rejects it.

    Approval creates the MSP and its first user; the user then sets a
    password through the emailed link.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    organisation_name = models.CharField(max_length=200)
    contact_name = models.CharField(max_length=200)
    email = models.EmailField()
    username = models.CharField(max_length=150)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    msp = models.ForeignKey(MSP, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                            verbose_name="MSP")

    class Meta:
        verbose_name = "MSP sign-up request"
        constraints = [
            # Two pending requests for one user name could not both be approved.
            models.UniqueConstraint(fields=["username"], condition=models.Q(status="pending"),
                                    name="msp_signup_pending_username"),
        ]

    def __str__(self) -> str:
        return f"{self.organisation_name} ({self.username}, {self.status})"
