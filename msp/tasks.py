"""Celery tasks of the Provision Server side, run in the public schema."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


# No automatic retry: a failed creation is reported in the job row, and the
# MSP user decides whether to try again. Celery rejects a soft limit above the
# hard one, and the default hard limit (CELERY_TASK_TIME_LIMIT, 90 s) is below
# this soft limit, so the hard limit is set here too (seconds).
@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def run_tenant_creation_job_task(job_id: str) -> str | None:
    """Create the hosted tenant of a TenantCreationJob; the job row records the progress and outcome."""
    from msp.services.tenant_jobs import run_tenant_creation_job

    job = run_tenant_creation_job(job_id)
    return job.state if job else None
