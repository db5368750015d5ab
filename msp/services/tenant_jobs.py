"""Creating a hosted tenant in the background, for the MSP portal, with progress the portal polls."""

from __future__ import annotations

import dataclasses
import logging

from django.db import transaction
from django.db.models import Q

from audit.services import Actor
from common import tokens
from msp.models import MSP, TenantRegistration
from msp.services.registrations import RegistrationRejected
from tenants.models import TenantCreationJob

logger = logging.getLogger(__name__)

State = TenantCreationJob.State


def start_tenant_creation_job(msp: MSP, *, name: str, schema_name: str, domain: str, actor: Actor,
                              register: bool = True, admin_username: str = "", admin_password: str = ""
                              ) -> TenantCreationJob:
    """Check the request, store it as a job and queue the job once the transaction commits.

    Raises ``tenants.services.TenantRejected`` or :class:`RegistrationRejected`
    for input that the job would reject, so the form can show it at once.
    """
    from msp.tasks import run_tenant_creation_job_task
    from tenants.services import management_url_for, validate_new_tenant

    schema_name = schema_name.strip().lower()
    domain = domain.strip().lower()
    validate_new_tenant(schema_name, domain)
    url = management_url_for(domain)
    if register and TenantRegistration.objects.filter(Q(msp=msp, name=name.strip()) | Q(management_url=url)).exists():
        raise RegistrationRejected(
            "duplicate_registration",
            f"A tenant registration named {name!r} or at {url} already exists; pick another name or domain.",
        )

    with transaction.atomic():
        job = TenantCreationJob.objects.create(
            owner_msp=msp, actor=dataclasses.asdict(actor), name=name.strip(), schema_name=schema_name,
            domain=domain, register=register, admin_username=admin_username or "",
            admin_password_encrypted=tokens.encrypt(admin_password.encode()) if admin_password else "",
            management_url=url,
        )
        transaction.on_commit(lambda: run_tenant_creation_job_task.delay(str(job.pk)))
    logger.info("MSP %s queued tenant creation job %s for schema %s", msp.slug, job.pk, schema_name)
    return job


def _set_step(job_id, step: str) -> None:
    TenantCreationJob.objects.filter(pk=job_id).update(step=step)


def run_tenant_creation_job(job_id) -> TenantCreationJob | None:
    """Run a queued job; return it, or None if it is gone or another worker has taken it.

    The conditional UPDATE lets only one worker run a job, so a task that the
    broker delivers twice creates the tenant once.
    """
    from msp.services.hosted_tenants import create_and_register_hosted_tenant
    from tenants.services import TenantRejected

    claimed = TenantCreationJob.objects.filter(pk=job_id, state=State.QUEUED).update(state=State.RUNNING,
                                                                                    step="starting")
    if not claimed:
        logger.info("Tenant creation job %s is gone or already taken; nothing to do", job_id)
        return None
    # NOTE: a worker killed from here on leaves the job "running" for good.
    # A clone then rolls back with its transaction, but a tenant half-way
    # through "migrate" keeps its row and schema until it is deleted by hand.
    job = TenantCreationJob.objects.select_related("owner_msp").get(pk=job_id)
    password = tokens.decrypt(job.admin_password_encrypted).decode() if job.admin_password_encrypted else None
    try:
        created = create_and_register_hosted_tenant(
            job.owner_msp, name=job.name, schema_name=job.schema_name, domain=job.domain, actor=Actor(**job.actor),
            register=job.register, admin_username=job.admin_username or None, admin_password=password,
            progress=lambda step: _set_step(job_id, step),
        )
    except (TenantRejected, RegistrationRejected) as error:
        logger.warning("Tenant creation job %s rejected: %s", job_id, error.detail)
        _finish(job, state=State.FAILED, step="failed", error=error.detail)
        return job
    except Exception:
        logger.exception("Tenant creation job %s for schema %s failed", job_id, job.schema_name)
        _finish(job, state=State.FAILED, step="failed",
                error=f"Creating the tenant failed on the server and nothing was kept; try again, or give "
                      f"the vendor job id {job_id}.")
        return job

    _finish(job, state=State.SUCCEEDED, step="done", registration=created.registration,
            registration_error=created.registration_error or "",
            access_key_encrypted=tokens.encrypt(created.access_key.encode()))
    logger.info("Tenant creation job %s created tenant %s", job_id, job.schema_name)
    return job


def _finish(job: TenantCreationJob, **changes) -> None:
    # The admin password is erased whatever the outcome.
    changes["admin_password_encrypted"] = ""
    for field_name, value in changes.items():
        setattr(job, field_name, value)
    job.save(update_fields=[*changes, "updated_at"])


@transaction.atomic
def reveal_access_key(job: TenantCreationJob) -> str | None:
    """Return the access key of a succeeded job the first time only, and erase it; later calls return None."""
    locked = TenantCreationJob.objects.select_for_update().get(pk=job.pk)
    if locked.state != State.SUCCEEDED or locked.access_key_shown or not locked.access_key_encrypted:
        return None
    access_key = tokens.decrypt(locked.access_key_encrypted).decode()
    locked.access_key_encrypted = ""
    locked.access_key_shown = True
    locked.save(update_fields=["access_key_encrypted", "access_key_shown", "updated_at"])
    return access_key
