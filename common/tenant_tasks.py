"""A base class for Celery tasks that work on one tenant's rows, so that they never run outside a tenant schema.

tenant-schemas-celery switches the worker's connection to the schema named
in the ``_schema_name`` header before each task, and to public when the
header is missing or None. A tenant task run in public finds none of its
tables: it failed deep inside with a ProgrammingError, or, as the batch
issuance did, logged every request as failed and reported success. So it
fails at once instead, with an error that names the task.
"""

from __future__ import annotations

from django.db import InterfaceError, OperationalError, connection
from django_tenants.utils import get_public_schema_name
from tenant_schemas_celery.app import get_schema_name_from_task
from tenant_schemas_celery.task import TenantTask

# Errors after which the same task can succeed later: the broker or PostgreSQL
# was unreachable. Tasks list them in autoretry_for only when a repeated run
# is harmless (row locks and status checks).
RETRYABLE_ERRORS = (OSError, OperationalError, InterfaceError)

# Maximum wait, in seconds, before a task whose schema could not be selected is tried again.
SCHEMA_RETRY_MAX_SECONDS = 60


class TenantSchemaRequired(RuntimeError):
    """A tenant-scoped task was started without a tenant schema."""


class TenantSchemaNotSelected(RuntimeError):
    """A task queued for a tenant schema runs in another one, because selecting it failed (database unreachable)."""


class TenantScopedTask(TenantTask):
    """A task that runs only in a tenant's schema: pass ``base=TenantScopedTask`` to ``shared_task``."""

    abstract = True

    def __call__(self, *args, **kwargs):
        schema_name = connection.schema_name
        queued_for = get_schema_name_from_task(self, kwargs)
        if queued_for and queued_for != get_public_schema_name() and schema_name != queued_for:
            # tenant-schemas-celery's task_prerun handler failed, typically because PostgreSQL
            # was unreachable, and Celery ran the task anyway. Try again once it may be back.
            error = TenantSchemaNotSelected(f"Task {self.name} was queued for schema {queued_for} but runs in "
                                            f"{schema_name or 'no'} schema; selecting the schema failed.")
            raise self.retry(exc=error, countdown=min(2 ** self.request.retries, SCHEMA_RETRY_MAX_SECONDS))
        if not schema_name or schema_name == get_public_schema_name():
            raise TenantSchemaRequired(
                f"Task {self.name} works on one tenant's rows but was started in the {schema_name or 'no'} "
                "schema; queue it from the tenant's schema, or with headers={'_schema_name': <tenant schema>}."
            )
        return super().__call__(*args, **kwargs)
