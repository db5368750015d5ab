"""Celery tasks of the Provision Server side, run in the public schema."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


# No automatic retry: a failed creation is reported in the job row, and the
# MSP user decides whether to try again. The hard limit (seconds) must exceed
# the soft one, or the global CELERY_TASK_TIME_LIMIT of 90 s would kill the
# task before its soft limit lets it record the failure.
@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def run_tenant_creation_job_task(job_id: str) -> str | None:
    """Create the hosted tenant of a TenantCreationJob; the job row records the progress and outcome."""
    from msp.services.tenant_jobs import run_tenant_creation_job

    job = run_tenant_creation_job(job_id)
    return job.state if job else None
