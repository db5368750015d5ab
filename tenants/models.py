import uuid

from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Tenant(TenantMixin):
    """A Director tenant hosted by this deployment: one PostgreSQL schema.

    The public schema itself is also a row here (schema ``public``), as
    django-tenants requires; it serves the Provision Server host names.
    """

    name = models.CharField(max_length=200)
    owner_msp = models.ForeignKey(
        "msp.MSP", null=True, blank=True, on_delete=models.PROTECT, related_name="hosted_tenants",
        verbose_name="owner MSP",
    )
    # The tenant access key that ECs present to this tenant's onboard API:
    # only its keyed hash is kept here.
    access_key_id = models.CharField(max_length=32, blank=True, db_index=True)
    access_key_hash = models.CharField(max_length=64, blank=True)
    # The key replaced by the last rotation, accepted until previous_key_valid_until
    # so that ECs holding it can still onboard while the new key spreads.
    previous_access_key_id = models.CharField(max_length=32, blank=True)
    previous_access_key_hash = models.CharField(max_length=64, blank=True)
    previous_key_valid_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # Schemas are created by tenants.services.create_hosted_tenant, which also
    # makes the issuing CA; deleting a row never drops a schema.
    auto_create_schema = True
    auto_drop_schema = False

    def __str__(self) -> str:
        return f"{self.name} ({self.schema_name})"


class Domain(DomainMixin):
    """A host name that selects its tenant's schema, e.g. ``acme.localhost``."""


class DeploymentRootCA(models.Model):
    """The deployment's root CA, which signs each hosted tenant's issuing CA
    and the tunnel gateway's server certificate.

    One row per deployment; its private key is encrypted with ZTSP_DATA_KEYS.
    """

    certificate_pem = models.TextField()
    # The encrypted PEM key, or a key reference of ``key_backend`` (see pki.signers).
    private_key_encrypted = models.TextField()
    key_backend = models.CharField(max_length=32, default="software")
    key_id = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "deployment root CA"

    def __str__(self) -> str:
        return f"Root CA {self.key_id[:16]}"


class TenantCreationJob(models.Model):
    """A hosted tenant being created in the background for an MSP, with its progress.

    The portal polls it. The tenant admin's password and the new access key
    are kept here only encrypted, and each is erased once used: the password
    when the job finishes, the key once the MSP user has been shown it.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner_msp = models.ForeignKey("msp.MSP", on_delete=models.CASCADE, related_name="tenant_creation_jobs",
                                  verbose_name="owner MSP")
    # The audit actor of the request that started the job (audit.services.Actor fields).
    actor = models.JSONField()
    name = models.CharField(max_length=200)
    schema_name = models.CharField(max_length=63)
    domain = models.CharField(max_length=253)
    register = models.BooleanField(default=True)
    admin_username = models.CharField(max_length=150, blank=True)
    admin_password_encrypted = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    # The step running now, or the last one reached, in words for the portal.
    step = models.CharField(max_length=100, default="waiting for a worker")
    error = models.TextField(blank=True)
    access_key_encrypted = models.TextField(blank=True)
    access_key_shown = models.BooleanField(default=False)
    management_url = models.CharField(max_length=300, blank=True)
    registration = models.ForeignKey("msp.TenantRegistration", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    registration_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["owner_msp", "created_at"])]

    def __str__(self) -> str:
        return f"{self.schema_name}: {self.state} ({self.step})"
