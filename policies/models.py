"""Configuration policies (tenant schema): what each Edge Controller should run, and what it reported back.

An EC's desired configuration is one JSON document with a version number
that only grows. It is the merge of three layers, each later layer replacing
whole top-level keys of the earlier ones:

1. ``auto`` policies attached to a tag that the EC has, oldest policy first;
2. ``on_demand`` policies an admin pushed to the EC, in the order pushed;
3. the EC's manual configuration.

The gateway sends the desired document down the tunnel, and the EC's ``ack``
moves ``EdgeController.applied_config_version`` up to it.
"""

from django.db import models
from django.db.models.functions import Lower

from onboarding.models import EdgeController, Tag


class Policy(models.Model):
    class Kind(models.TextChoices):
        AUTO = "auto", "Automatic, by tag"
        ON_DEMAND = "on_demand", "On demand"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    description = models.CharField(max_length=500, blank=True)
    # Used by auto policies only: an EC with any of these tags gets the policy.
    tags = models.ManyToManyField(Tag, blank=True, related_name="policies")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "policies"
        constraints = [
            models.UniqueConstraint(Lower("name"), name="policy_name_unique_ignoring_case"),
        ]

    def __str__(self) -> str:
        return self.name

    def latest_version(self) -> "PolicyVersion | None":
        return self.versions.order_by("-number").first()


class PolicyVersion(models.Model):
    """One body of a policy. A stored version cannot be saved again: a new body is a new version."""

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["policy", "number"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "number"], name="policy_version_number_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.policy.name} v{self.number}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError(f"Version {self.number} of policy {self.policy_id} is stored already and cannot change; "
                             "add a new version instead.")
        super().save(*args, **kwargs)


class PolicyAssignment(models.Model):
    """An on-demand policy pushed to one EC, at the version that was pushed."""

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="assignments")
    version = models.ForeignKey(PolicyVersion, on_delete=models.CASCADE, related_name="assignments")
    edge_controller = models.ForeignKey(EdgeController, on_delete=models.CASCADE, related_name="policy_assignments")
    assigned_at = models.DateTimeField()
    assigned_by = models.CharField(max_length=150, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["policy", "edge_controller"], name="policy_assignment_per_ec"),
        ]

    def __str__(self) -> str:
        return f"{self.policy_id} v{self.version_id} to EC {self.edge_controller_id}"


class ManualConfig(models.Model):
    """Configuration an admin edited for one EC; it overrides every policy."""

    edge_controller = models.OneToOneField(EdgeController, on_delete=models.CASCADE, related_name="manual_config")
    body = models.JSONField()
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True)

    def __str__(self) -> str:
        return f"manual config of EC {self.edge_controller_id}"


class DesiredConfig(models.Model):
    """The configuration document an EC should run, and the last ``ack`` it sent."""

    edge_controller = models.OneToOneField(EdgeController, on_delete=models.CASCADE, related_name="desired_config")
    # Starts at 1 and grows by one each time the body changes. An EC without a row has version 0.
    version = models.PositiveIntegerField()
    body = models.JSONField()
    # Where each layer came from: [{"layer": "auto"|"on_demand"|"manual", "policy", "policy_id", "policy_version"}].
    sources = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)
    last_ack_version = models.PositiveIntegerField(null=True, blank=True)
    last_ack_status = models.CharField(max_length=16, blank=True)
    last_ack_detail = models.CharField(max_length=500, blank=True)
    last_ack_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"config v{self.version} of EC {self.edge_controller_id}"


class PushJob(models.Model):
    """A background push of an on-demand policy version to many ECs, with its progress counts."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="push_jobs")
    version = models.ForeignKey(PolicyVersion, on_delete=models.CASCADE, related_name="push_jobs")
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    # targeted: ECs selected. sent: ECs that were online when the job reached them, so the config went out
    # at once. acked / failed: ECs that acknowledged the pushed version (or a later one) or reported a
    # failure. An EC that was offline gets the config at its next hello and counts once it acks.
    targeted = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    acked = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"push job {self.pk} ({self.state})"


class PushTarget(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent to the online EC"
        # The EC was offline; the gateway sends it the configuration when it reconnects.
        WAITING = "waiting", "Waiting for the EC to connect"
        ACKED = "acked", "Acknowledged"
        FAILED = "failed", "Failed on the EC"

    job = models.ForeignKey(PushJob, on_delete=models.CASCADE, related_name="targets")
    edge_controller = models.ForeignKey(EdgeController, on_delete=models.CASCADE, related_name="push_targets")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # The EC's desired configuration version that contains the pushed policy.
    config_version = models.PositiveIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "edge_controller"], name="push_target_per_ec"),
        ]
        indexes = [
            # Acks look up the open targets of one EC.
            models.Index(fields=["edge_controller", "status"], name="push_target_ec_status"),
        ]

    def __str__(self) -> str:
        return f"job {self.job_id} EC {self.edge_controller_id} {self.status}"
