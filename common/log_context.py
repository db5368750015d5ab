"""The tenant schema on log records, also in threads and tasks whose database connection names another schema.

django_tenants' TenantContextFilter reads the schema from the database
connection of the thread that logs. Some code logs from another thread than
the one that selected the schema. Django's ASGI handler logs 4xx and 5xx
responses from a thread pool, and the tunnel gateway logs from its event loop
and from pool threads. There the connection names "public", or whatever schema
the thread's previous work left. A context variable set for the request or
the tunnel follows the work into asyncio tasks and ``sync_to_async`` threads,
so the filter prefers it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django_tenants.log import TenantContextFilter as ConnectionTenantFilter

# (schema name, host name) of the request or tunnel being served, or None outside one.
_log_tenant: ContextVar[tuple[str, str | None] | None] = ContextVar("ztsp_log_tenant", default=None)


def set_log_schema(schema_name: str | None, domain: str | None = None) -> None:
    """Tag the log records of the current context with ``schema_name``; None falls back to the connection's."""
    _log_tenant.set((schema_name, domain) if schema_name is not None else None)


@contextmanager
def log_schema(schema_name: str) -> Iterator[None]:
    """Tag the log records written inside the block with ``schema_name``."""
    token = _log_tenant.set((schema_name, None))
    try:
        yield
    finally:
        _log_tenant.reset(token)


class TenantContextFilter(ConnectionTenantFilter):
    """Adds ``schema_name`` and ``domain_url`` to each record: the context's tenant, else the connection's."""

    def filter(self, record):
        super().filter(record)
        tenant = _log_tenant.get()
        if tenant is not None:
            record.schema_name, record.domain_url = tenant
        return True
