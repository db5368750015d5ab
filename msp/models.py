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

    class Meta:
        verbose_name = "MSP membership"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="msp_membership")
    msp = models.ForeignKey(MSP, on_delete=models.CASCADE, related_name="memberships")

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
