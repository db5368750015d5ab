"""Celery tasks of the Director. Each runs in the tenant schema named in its headers, and fails without one."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta

import kombu.exceptions
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django_tenants.utils import schema_context

from common.tenant_tasks import RETRYABLE_ERRORS, TenantScopedTask
from onboarding.services import complete_issuance, complete_issuances

logger = logging.getLogger(__name__)




# Maximum onboard requests named in one issue_certificates_task message. A batch
# pays the worker's cost per task (the tenant lookup, the database connection
# and the broker round trips) once instead of once per certificate, and is
# stored with one statement per step. A batch of 500 took about 0.4 s in
# bench/pki_issuance.py on 2 vCPUs, far below the 60 s soft time limit.
ISSUE_BATCH_SIZE = 500
# Seconds. The sweep runs one indexed query per tenant, so these only stop a run that hangs.
SWEEP_SOFT_TIME_LIMIT = 300
SWEEP_TIME_LIMIT = 360


@shared_task(
    base=TenantScopedTask,
    bind=True,
    acks_late=True,
    autoretry_for=RETRYABLE_ERRORS,
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=10,
)
def issue_certificate_task(self, request_id: str) -> str | None:
    """Sign the CSR of an approved onboard request and wake the EC's long-poll.

    Approvals queue issue_certificates_task instead. This task still runs the
    messages that an older release queued.
    """
    logger.info("Issuing certificate for onboard request %s in %s (attempt %d)", request_id,
                connection.schema_name, self.request.retries + 1)
    onboard_request = complete_issuance(request_id)
    return onboard_request.status if onboard_request else None


@shared_task(
    base=TenantScopedTask,
    bind=True,
    acks_late=True,
    autoretry_for=RETRYABLE_ERRORS,
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=10,
)
def issue_certificates_task(self, request_ids: list[str]) -> dict[str, int]:
    """Sign the CSRs of approved onboard requests and wake their long-polls.

    The batch is issued in one transaction. When that fails, each request is
    issued in its own transaction: a request whose issuance raises is logged
    and left approved, as a failed issue_certificate_task leaves it, and the
    other requests are still issued. Returns the number of requests by
    resulting status. An error in RETRYABLE_ERRORS retries the whole batch,
    which skips the requests issued already.
    """
    logger.info("Issuing certificates for %d onboard requests in %s (attempt %d)", len(request_ids),
                connection.schema_name, self.request.retries + 1)
    try:
        return complete_issuances(request_ids)
    except (*RETRYABLE_ERRORS, SoftTimeLimitExceeded):
        raise
    except Exception:
        # One bad request must not hold back the others: fall back to one transaction per request.
        logger.exception("Issuing %d onboard requests of %s together failed; issuing them one by one",
                         len(request_ids), connection.schema_name)
    statuses: Counter[str] = Counter()
    for request_id in request_ids:
        try:
            onboard_request = complete_issuance(request_id)
        except (*RETRYABLE_ERRORS, SoftTimeLimitExceeded):
            raise
        except Exception:
            # Each request used to have a task of its own, so one request's error must not stop the others.
            logger.exception("Issuing the certificate of onboard request %s in %s failed", request_id,
                             connection.schema_name)
            statuses["failed"] += 1
            continue
        statuses[onboard_request.status if onboard_request else "not_found"] += 1
    return dict(statuses)


class _IssuanceBatch:
    """An on-commit callback that queues one issue_certificates_task for the requests it collected."""

    def __init__(self, schema_name: str):
        self.schema_name = schema_name
        self.request_ids: list[str] = []

    def __call__(self) -> None:
        # The approval is committed by now, so a broker outage must not turn it
        # into an error: requeue_stalled_issuances_task queues it again later.
        try:
            _queue_issuances(self.schema_name, self.request_ids)
        except kombu.exceptions.OperationalError as error:
            logger.warning("Could not queue the issuance of %d approved onboard requests of %s: %s; they are queued "
                           "again within %d s", len(self.request_ids), self.schema_name, error,
                           2 * settings.ZTSP_ISSUANCE_SWEEP_SECONDS)


def _queue_issuances(schema_name: str, request_ids: list[str]) -> None:
    # The task takes ids only and re-reads the rows in the tenant's schema.
    issue_certificates_task.apply_async(args=[request_ids], headers={"_schema_name": schema_name})


@shared_task(soft_time_limit=SWEEP_SOFT_TIME_LIMIT, time_limit=SWEEP_TIME_LIMIT, ignore_result=True)
def requeue_stalled_issuances_task() -> int:
    """Queue the issuance again of every request approved over ZTSP_ISSUANCE_SWEEP_SECONDS ago; return how many.

    Celery beat runs it. It recovers approvals whose task never reached the
    broker (Redis was down at commit) or was lost with it. A request whose
    task is only slow gets a second task, which finds it issued and does
    nothing.
    """
    from django_tenants.utils import get_public_schema_name

    from onboarding.services import stalled_approval_ids
    from tenants.models import Tenant

    connection.set_schema_to_public()
    schema_names = list(Tenant.objects.exclude(schema_name=get_public_schema_name())
                        .order_by("schema_name").values_list("schema_name", flat=True))
    queued = 0
    for schema_name in schema_names:
        try:
            with schema_context(schema_name):
                request_ids = stalled_approval_ids(timedelta(seconds=settings.ZTSP_ISSUANCE_SWEEP_SECONDS))
            for start in range(0, len(request_ids), ISSUE_BATCH_SIZE):
                _queue_issuances(schema_name, request_ids[start:start + ISSUE_BATCH_SIZE])
        except SoftTimeLimitExceeded:
            raise
        except Exception:
            logger.exception("Queueing the stalled issuances of %s failed", schema_name)
            continue
        if request_ids:
            logger.warning("Queued the issuance of %d onboard requests of %s again; they were approved over %d s ago",
                           len(request_ids), schema_name, settings.ZTSP_ISSUANCE_SWEEP_SECONDS)
        queued += len(request_ids)
    return queued


def queue_issuance(request_id) -> None:
    """Queue the certificate issuance of an approved onboard request once the current transaction commits.

    Requests approved in one transaction, such as a bulk approval, share
    issue_certificates_task messages of up to ISSUE_BATCH_SIZE requests.
    Outside a transaction the task is queued at once.
    """
    schema_name = connection.schema_name
    savepoints = set(connection.savepoint_ids)
    # NOTE: Django 5.2 keeps the callbacks of the open transaction in
    # connection.run_on_commit as (savepoint ids, callback, robust) tuples and
    # has no public way to find one. A request joins only a batch registered
    # under the same savepoints, so a savepoint rollback drops the request
    # together with its batch.
    for pending_savepoints, callback, *_ in reversed(connection.run_on_commit):
        if (isinstance(callback, _IssuanceBatch) and callback.schema_name == schema_name
                and pending_savepoints == savepoints):
            if len(callback.request_ids) < ISSUE_BATCH_SIZE:
                callback.request_ids.append(str(request_id))
                return
            break
    batch = _IssuanceBatch(schema_name)
    batch.request_ids.append(str(request_id))
    transaction.on_commit(batch)
