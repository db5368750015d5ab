from django.conf import settings
from django.db import models
from django.utils import timezone


class CredentialType(models.TextChoices):
    PUBLIC_KEY = "public_key", "Public key"
    SECRET_SHA256 = "secret_sha256", "SHA-256 of a secret"


class ProductModel(models.Model):
    """A model number in the vendor's catalogue.

    While the catalogue has at least one entry, an import rejects rows whose
    model is not in it; an empty catalogue accepts any well-formed model.
    """

    model_number = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.model_number

    def save(self, *args, **kwargs):
        # Model numbers are compared upper-cased everywhere.
        self.model_number = self.model_number.strip().upper()
        super().save(*args, **kwargs)


class ImportBatch(models.Model):
    """One run of the manufacturing import: who imported which file, when, with what result."""

    class Status(models.TextChoices):
        COMPLETED = "completed", "Completed"
        DRY_RUN = "dry_run", "Dry run"

    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=255)
    source_name = models.CharField(max_length=255, blank=True)
    # SHA-256 of the file's bytes, to recognise a file imported again.
    source_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETED)
    rows = models.PositiveIntegerField(default=0)
    inserted = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    allocated_to = models.ForeignKey("msp.MSP", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    allocated = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(default=0)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "import batches"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.source_name or 'import'} by {self.created_by}"


class Product(models.Model):
    """An Edge Controller known to the vendor, identified by its Product ID.

    Its life on the Provision Server: imported from manufacturing, allocated to
    an MSP by vendor staff, claimed by that MSP, mapped to one of the MSP's
    tenant registrations, then looked up by the device itself.
    """

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        DISABLED = "disabled", "Disabled"
        DECOMMISSIONED = "decommissioned", "Decommissioned"

    # Canonical "MODEL:uuid" form from provisioning.product_ids.
    product_id = models.CharField("Product ID", max_length=128, unique=True)
    # Indexed through (model_number, state) below. Every index here costs
    # time on each imported row, so none repeats another's leading column.
    model_number = models.CharField(max_length=32)
    uuid = models.UUIDField("UUID", unique=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now)

    msp = models.ForeignKey(
        "msp.MSP", null=True, blank=True, on_delete=models.PROTECT, related_name="products",
        verbose_name="MSP", db_index=False,  # indexed through (msp, claimed_at)
    )
    allocated_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    tenant_registration = models.ForeignKey(
        "msp.TenantRegistration", null=True, blank=True, on_delete=models.PROTECT,
        related_name="products",
    )
    mapped_at = models.DateTimeField(null=True, blank=True)

    last_lookup_at = models.DateTimeField(null=True, blank=True)
    last_lookup_address = models.GenericIPAddressField(null=True, blank=True)
    last_facts = models.JSONField(default=dict, blank=True)

    # Reported by the device once its management tunnel is up (see
    # provisioning.services.reports). The Director's own records stay the
    # authority, because the Provision Server never reads them.
    onboarded_at = models.DateTimeField(null=True, blank=True)
    # db_default: the bulk import inserts rows with SQL that does not list this column.
    onboarded_certificate_serial = models.CharField(max_length=64, blank=True, db_default="")

    # Data from the manufacturing line.
    serial_number = models.CharField(max_length=64, blank=True)
    # A per-device credential: a public key (PEM) or the SHA-256 of a secret
    # (hex); the secret itself never reaches the Provision Server.
    credential_type = models.CharField(max_length=16, choices=CredentialType.choices, blank=True)
    credential = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # No database constraint or index: the import sets it on every new row,
    # and checking a million references at commit costs seconds for nothing
    # (batches are never deleted).
    import_batch = models.ForeignKey("ImportBatch", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="products", db_constraint=False, db_index=False)

    class Meta:
        indexes = [
            models.Index(fields=["msp", "claimed_at"]),
            models.Index(fields=["model_number", "state"]),
            # Exact serial search in the admin (no LIKE index needed).
            models.Index(fields=["serial_number"], name="product_serial"),
        ]
        constraints = [
            # A product is claimed only by the MSP it was allocated to, and
            # mapped only once claimed.
            models.CheckConstraint(
                condition=models.Q(claimed_at__isnull=True) | models.Q(msp__isnull=False),
                name="product_claimed_has_msp",
            ),
            models.CheckConstraint(
                condition=models.Q(tenant_registration__isnull=True) | models.Q(claimed_at__isnull=False),
                name="product_mapped_is_claimed",
            ),
        ]

    def __str__(self) -> str:
        return self.product_id


class ProvisioningAccessKey(models.Model):
    """A key baked into EC firmware that authorises ZTP lookups.

    Only a keyed hash is stored; the key itself is shown once at creation.
    """

    name = models.CharField(max_length=100)
    key_id = models.CharField(max_length=32, unique=True)
    key_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Comma-separated model numbers this key may look up; empty means any.
    allowed_models = models.CharField(max_length=500, blank=True,
                                      help_text="Comma-separated model numbers, e.g. EC100,EC200; empty allows all.")

    def __str__(self) -> str:
        return f"{self.name} ({self.key_id})"

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now


class LookupEvent(models.Model):
    """One ZTP lookup outcome: when, which Product ID, which access key, what it returned, from where.

    Rows are sampled by provisioning.services.lookup_history: at most one per
    Product ID and outcome a minute, and a capped number a minute for unknown
    or malformed Product IDs per client address.
    """

    at = models.DateTimeField(default=timezone.now)
    # Not a foreign key: unknown and malformed Product IDs are recorded too.
    # A known one is in canonical form, a malformed one as sent.
    product_id = models.CharField("Product ID", max_length=128)
    # The provisioning access key's id (never the key), for which firmware looked up.
    access_key_id = models.CharField(max_length=32)
    status = models.PositiveSmallIntegerField()
    code = models.CharField(max_length=64)
    source_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        # TODO: nothing deletes old rows yet; a product that keeps failing adds up to 1440 rows a day.
        ordering = ["-at", "-id"]
        indexes = [
            # The history of one product, newest first.
            models.Index(fields=["product_id", "-at"], name="lookup_event_product_at"),
            models.Index(fields=["at"], name="lookup_event_at"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.product_id} {self.status} {self.code}"
