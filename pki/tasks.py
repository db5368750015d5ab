"""Periodic PKI tasks, started by Celery beat (see CELERY_BEAT_SCHEDULE in the settings).

Beat queues them without a tenant, so they run in the public schema and
visit every tenant schema themselves. One tenant's failure is logged and the
others still run.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import connection
from django_tenants.utils import get_public_schema_name, schema_context

from tenants.models import Tenant

logger = logging.getLogger(__name__)

# Both tasks take well under a second per tenant, so these limits (seconds)
# only stop a run that hangs on a lock or a dead connection.
SOFT_TIME_LIMIT = 300
TIME_LIMIT = 360


def _tenant_schemas() -> list[str]:
    connection.set_schema_to_public()
    return list(
        Tenant.objects.exclude(schema_name=get_public_schema_name())
        .order_by("schema_name").values_list("schema_name", flat=True)
    )


@shared_task(soft_time_limit=SOFT_TIME_LIMIT, time_limit=TIME_LIMIT, ignore_result=True)
def refresh_crls_task() -> int:
    """Re-sign each tenant's CRLs that are older than ZTSP_CRL_REFRESH_SECONDS; return how many CAs were checked."""
    from pki.services import refresh_crls

    checked = failed = 0
    schemas = _tenant_schemas()
    for schema_name in schemas:
        try:
            with schema_context(schema_name):
                checked += refresh_crls()
        except SoftTimeLimitExceeded:
            raise
        except Exception:
            failed += 1
            logger.exception("Refreshing the CRLs of %s failed", schema_name)
    logger.info("Checked the CRLs of %d issuing CAs in %d tenants (%d tenants failed)", checked, len(schemas),
                failed)
    return checked


@shared_task(soft_time_limit=SOFT_TIME_LIMIT, time_limit=TIME_LIMIT, ignore_result=True)
def remind_renewals_task() -> int:
    """Send ``renew_due`` to every online EC whose certificate is due for renewal; return how many were published."""
    from gateway.reminders import send_renewal_reminders

    published = 0
    for schema_name in _tenant_schemas():
        try:
            with schema_context(schema_name):
                counts = send_renewal_reminders()
        except SoftTimeLimitExceeded:
            raise
        except Exception:
            logger.exception("Sending renewal reminders in %s failed", schema_name)
            continue
        published += counts.published
        if counts.due:
            logger.info("Renewal reminders in %s: %d certificates due, %d of their ECs online, %d reminders "
                        "published", schema_name, counts.due, counts.online, counts.published)
        if counts.online > counts.published:
            logger.warning("No tunnel gateway received %d renewal reminders of %s; is the gateway running?",
                           counts.online - counts.published, schema_name)
    return published
