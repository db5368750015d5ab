"""Celery tasks of the Provision Server side, run in the public schema."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


# No automatic retry: a failed creation is reported in the job row, and the
# MSP user decides whether to try again.
@shared_task(acks_late=True, soft_time_limit=600)
def run_tenant_creation_job_task(job_id: str) -> str | None:
    """Create the hosted tenant of a TenantCreationJob; the job row records the progress and outcome."""
    from msp.services.tenant_jobs import run_tenant_creation_job

    job = run_tenant_creation_job(job_id)
    return job.state if job else None
