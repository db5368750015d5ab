"""Push jobs: an on-demand policy version sent to many ECs by a Celery task, with progress counts."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import Actor, record_event
from onboarding.models import EdgeController
from policies.delivery import send_config_after_commit
from policies.models import DesiredConfig, Policy, PolicyVersion, PushJob, PushTarget
from policies.services import PolicyError, _existing_tags, assign_policy, refresh_desired_configs

logger = logging.getLogger(__name__)

# ECs handled per transaction by run_push_job; each batch costs a fixed number of queries.
PUSH_BATCH_SIZE = 200
MAX_PRODUCT_IDS = 10_000


def _target_ids(product_ids: list[str], tag_names: list[str]) -> list[int]:
    """Return the onboarded ECs named by Product ID or tag; raise PolicyError naming every unknown Product ID."""
    if len(product_ids) > MAX_PRODUCT_IDS:
        raise PolicyError("too_many_targets", f"{len(product_ids)} Product IDs given; send at most "
                                              f"{MAX_PRODUCT_IDS} per push, or use tags.")
    tags = _existing_tags(tag_names)
    found = dict(EdgeController.objects.filter(product_id__in=product_ids).values_list("product_id", "state"))
    missing = [product_id for product_id in product_ids if product_id not in found]
    if missing:
        raise PolicyError("edge_controller_not_found",
                          f"{len(missing)} Product IDs are not ECs of this tenant: {', '.join(missing[:10])}.",
                          errors={"product_ids": missing})
    not_onboarded = [product_id for product_id in product_ids if found[product_id] != EdgeController.State.ONBOARDED]
    if not_onboarded:
        raise PolicyError("not_onboarded", f"{len(not_onboarded)} ECs are not onboarded: "
                                           f"{', '.join(not_onboarded[:10])}.", errors={"product_ids": not_onboarded})
    query = Q(product_id__in=product_ids)
    if tags:
        query |= Q(tags__in=tags)
    return list(EdgeController.objects.filter(query, state=EdgeController.State.ONBOARDED)
                .values_list("pk", flat=True).distinct())


def start_push_job(policy: Policy, *, actor: Actor, product_ids: Iterable[str] = (),
                   tag_names: Iterable[str] = ()) -> PushJob:
    """Create a job that pushes the policy's latest version to the ECs named by Product ID or tag.

    The Celery task starts after commit. Raises PolicyError, with nothing
    written, for an auto policy, an unknown Product ID or tag, or no target.
    """
    from policies.tasks import push_policy_task

    if policy.kind != Policy.Kind.ON_DEMAND:
        raise PolicyError("not_on_demand", f"Policy {policy.name!r} is applied by tag; only on-demand policies "
                                           "are pushed.")
    product_ids = list(dict.fromkeys(str(product_id).strip() for product_id in product_ids))
    controller_ids = _target_ids(product_ids, list(tag_names))
    if not controller_ids:
        raise PolicyError("no_targets", "No onboarded EC matches these Product IDs and tags.")
    version = policy.latest_version()
    with transaction.atomic():
        job = PushJob.objects.create(policy=policy, version=version, targeted=len(controller_ids),
                                     created_by=actor.name)
        PushTarget.objects.bulk_create([PushTarget(job=job, edge_controller_id=pk) for pk in controller_ids],
                                       batch_size=1000)
        record_event("policy.push", actor=actor, object_type="policy", object_id=str(policy.pk),
                     details={"job": job.pk, "version": version.number, "targeted": len(controller_ids)})
        schema_name = connection.schema_name
        transaction.on_commit(lambda: push_policy_task.apply_async(args=[job.pk],
                                                                   headers={"_schema_name": schema_name}))
    logger.info("Push job %s of policy %s v%d to %d ECs queued by %s", job.pk, policy.pk, version.number,
                len(controller_ids), actor.name)
    return job


def run_push_job(job_id: int, *, actor: Actor | None = None) -> PushJob | None:
    """Assign the job's policy version to its pending targets in batches and send to those online.

    Idempotent: a redelivered task handles only the targets still pending.
    """
    actor = actor or Actor.system("config-push")
    updated = PushJob.objects.filter(pk=job_id, state__in=[PushJob.State.QUEUED, PushJob.State.RUNNING]).update(
        state=PushJob.State.RUNNING)
    if not updated:
        logger.info("Push job %s is gone or done; nothing to push", job_id)
        return PushJob.objects.filter(pk=job_id).first()
    job = PushJob.objects.select_related("version").get(pk=job_id)
    while True:
        with transaction.atomic():
            batch = list(PushTarget.objects.select_for_update(skip_locked=True)
                         .filter(job=job, status=PushTarget.Status.PENDING).order_by("pk")[:PUSH_BATCH_SIZE])
            if not batch:
                break
            _push_batch(job, job.version, batch, actor)
    PushJob.objects.filter(pk=job_id).update(state=PushJob.State.DONE, finished_at=timezone.now())
    job.refresh_from_db()
    logger.info("Push job %s done: %d targeted, %d sent, %d acked, %d failed", job.pk, job.targeted, job.sent,
                job.acked, job.failed)
    return job


def _push_batch(job: PushJob, version: PolicyVersion, batch: list[PushTarget], actor: Actor) -> None:
    controller_ids = [target.edge_controller_id for target in batch]
    assign_policy(version, controller_ids, actor=actor)
    # Sent below, also to ECs whose document did not change but that have not applied it yet.
    refresh_desired_configs(controller_ids, send=False)
    desired = {row.edge_controller_id: row
               for row in DesiredConfig.objects.filter(edge_controller_id__in=controller_ids)}
    controllers = {controller.pk: controller for controller in EdgeController.objects.filter(pk__in=controller_ids)
                   .only("pk", "product_id", "online", "applied_config_version")}
    sent = acked = 0
    for target in batch:
        controller = controllers[target.edge_controller_id]
        row = desired[target.edge_controller_id]
        target.config_version = row.version
        if controller.applied_config_version == row.version:
            target.status = PushTarget.Status.ACKED
            acked += 1
        elif controller.online:
            target.status = PushTarget.Status.SENT
            send_config_after_commit(controller.product_id, row.version, row.body)
            sent += 1
        else:
            target.status = PushTarget.Status.WAITING
    PushTarget.objects.bulk_update(batch, ["status", "config_version"])
    PushJob.objects.filter(pk=job.pk).update(sent=F("sent") + sent, acked=F("acked") + acked)
