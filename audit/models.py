from django.db import models


class AuditEvent(models.Model):
    """One state change: who did what to which object, when and from where.

    Lives in the public schema. Events of a Director tenant carry its schema
    name, so one log covers the Provision Server and every hosted tenant.
    Rows are only ever inserted.
    """

    class ActorType(models.TextChoices):
        USER = "user", "User"
        MSP_TOKEN = "msp_token", "MSP API token"
        DEVICE = "device", "Edge Controller"
        SYSTEM = "system", "System"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    # A readable name of the actor at the time (user name, token id, Product ID).
    actor = models.CharField(max_length=255)
    source_address = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=255, db_index=True)
    tenant_schema = models.CharField(max_length=63, blank=True, db_index=True)
    msp_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_type}:{self.object_id}"
