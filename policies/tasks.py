"""Celery tasks of configuration policies. Each runs in the tenant schema named in its headers, or fails."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import connection

from common.tenant_tasks import RETRYABLE_ERRORS, TenantScopedTask
from policies.jobs import run_push_job

logger = logging.getLogger(__name__)


# A redelivered or retried job handles only its targets still pending, so a
# run cut short by an unreachable PostgreSQL or broker is simply tried again.
@shared_task(base=TenantScopedTask, bind=True, acks_late=True, autoretry_for=RETRYABLE_ERRORS, retry_backoff=True,
             retry_backoff_max=60, max_retries=10)
def push_policy_task(self, job_id: int) -> dict | None:
    """Push a policy version to the targets of push job ``job_id``; return its counts."""
    logger.info("Running push job %s in %s (attempt %d)", job_id, connection.schema_name, self.request.retries + 1)
    job = run_push_job(job_id)
    if job is None:
        return None
    return {"targeted": job.targeted, "sent": job.sent, "acked": job.acked, "failed": job.failed}
