"""Deleting a Director tenant hosted by this deployment, and what points at it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from audit.services import Actor, record_event
from tenants.models import Domain, Tenant
from tenants.services import ARCHIVE_PREFIX, management_url_for

logger = logging.getLogger(__name__)

# PostgreSQL identifiers are at most 63 bytes: "archived_" (9) + 39 + "_" +
# a 14-digit timestamp.
ARCHIVED_NAME_CHARS = 39


@dataclass(frozen=True)
class DeletedTenant:
    schema_name: str
    policy: str
    # The schema that keeps the data under the archive policy, else None.
    archived_schema: str | None
    registrations_deleted: int
    products_unmapped: int


def archived_schema_name(schema_name: str) -> str:
    stamp = timezone.now().strftime("%Y%m%d%H%M%S")
    return f"{ARCHIVE_PREFIX}{schema_name[:ARCHIVED_NAME_CHARS]}_{stamp}"


@transaction.atomic
def delete_hosted_tenant(tenant: Tenant, *, actor: Actor, policy: str | None = None) -> DeletedTenant:
    """Delete a hosted tenant: its row, domains and schema, and its registrations at the Provision Server.

    ``policy`` (default ``ZTSP_TENANT_DELETE_POLICY``) is ``"drop"`` to delete
    the schema or ``"archive"`` to rename it to
    ``archived_<schema>_<UTC timestamp>``, which keeps its data but serves no
    host name. Every tenant registration at the tenant's management URLs is
    deleted and its products unmapped, so their ZTP lookups return 409
    ``not_mapped`` until the MSP maps them elsewhere. It all happens in one
    transaction, because PostgreSQL DDL is transactional.
    """
    from msp.services.registrations import clear_tenant_registrations, registrations_at

    policy = policy or settings.ZTSP_TENANT_DELETE_POLICY
    if policy not in ("drop", "archive"):
        raise ValueError(f"policy must be 'drop' or 'archive', not {policy!r}")
    connection.set_schema_to_public()
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    schema_name = tenant.schema_name
    if schema_name == get_public_schema_name():
        raise ValueError("The public tenant serves the Provision Server and cannot be deleted.")

    domains = list(Domain.objects.filter(tenant=tenant).values_list("domain", flat=True))
    urls = [management_url_for(domain) for domain in domains]
    registrations = registrations_at(urls)
    unmapped = clear_tenant_registrations(registrations, actor=actor, reason=f"tenant {schema_name} deleted")

    quoted = connection.ops.quote_name(schema_name)
    archived = archived_schema_name(schema_name) if policy == "archive" else None
    with connection.cursor() as cursor:
        if archived:
            cursor.execute(f"ALTER SCHEMA {quoted} RENAME TO {connection.ops.quote_name(archived)}")
        else:
            cursor.execute(f"DROP SCHEMA IF EXISTS {quoted} CASCADE")
    Domain.objects.filter(tenant=tenant).delete()
    Tenant.objects.filter(pk=tenant.pk).delete()

    record_event("tenant.delete", actor=actor, object_type="tenant", object_id=schema_name,
                 msp_id=tenant.owner_msp_id,
                 details={"policy": policy, "archived_schema": archived, "domains": domains,
                          "registrations_deleted": len(registrations), "products_unmapped": unmapped})
    logger.info("Deleted tenant %s (%s; schema %s); deleted %d registrations and unmapped %d products",
                schema_name, policy, archived or "dropped", len(registrations), unmapped)
    return DeletedTenant(schema_name, policy, archived, len(registrations), unmapped)
