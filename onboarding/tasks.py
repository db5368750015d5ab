"""Celery tasks of the Director. Each runs in the schema named in its headers."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import connection

from onboarding.services import complete_issuance

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=10,
)
def issue_certificate_task(self, request_id: str) -> str | None:
    """Sign the CSR of an approved onboard request and wake the EC's long-poll."""
    logger.info("Issuing certificate for onboard request %s in %s (attempt %d)", request_id,
                connection.schema_name, self.request.retries + 1)
    onboard_request = complete_issuance(request_id)
    return onboard_request.status if onboard_request else None
