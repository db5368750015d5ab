"""The template schema that new tenant schemas are cloned from.

The template is a schema with every tenant migration applied and no tenant
rows in it: no issuing CA, no users, no ECs. It is not a Tenant, so no host
name selects it and ``migrate_schemas`` skips it. Instead it is rebuilt
whenever its applied migrations differ from the code's, which
:func:`ensure_tenant_template` checks before each clone.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid

from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader
from django_tenants.clone import CloneSchema
from django_tenants.utils import schema_exists

logger = logging.getLogger(__name__)

# Key of a PostgreSQL advisory lock (any constant bigint unique to this use),
# taken shared by each clone and exclusive by the swap of a new template, so a
# clone never reads a template that is being dropped.
SWAP_LOCK = 0x7A747370_0002


def template_schema_name() -> str:
    return settings.ZTSP_TENANT_TEMPLATE_SCHEMA


@functools.cache
def _code_migrations() -> tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]]:
    """Return the migrations of the code: those a migrated schema must have, and every one on disk.

    Cached per process, because the code does not change while it runs.
    """
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return frozenset(loader.graph.nodes), frozenset(loader.disk_migrations)


def applied_migrations(schema_name: str) -> set[tuple[str, str]] | None:
    """Return the (app, name) migration records of ``schema_name``, or None without a migration table."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'django_migrations'",
                       [schema_name])
        if cursor.fetchone() is None:
            return None
        cursor.execute(f"SELECT app, name FROM {connection.ops.quote_name(schema_name)}.django_migrations")  # noqa: S608
        return {(app, name) for app, name in cursor.fetchall()}


def is_fully_migrated(schema_name: str) -> bool:
    """Tell whether ``schema_name`` has every migration of the code applied and none that the code lacks."""
    applied = applied_migrations(schema_name)
    if applied is None:
        return False
    required, on_disk = _code_migrations()
    return required <= applied and applied <= on_disk


def migrate_new_schema(schema_name: str) -> None:
    """Create ``schema_name`` and run every tenant migration in it (commits on its own)."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {connection.ops.quote_name(schema_name)}")
    call_command("migrate_schemas", tenant=True, schema_name=schema_name, interactive=False, verbosity=0)
    connection.set_schema_to_public()


def _lock_swap(*, shared: bool) -> None:
    """Take the swap lock until the end of the current transaction."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_advisory_xact_lock{'_shared' if shared else ''}(%s)", [SWAP_LOCK])


def ensure_tenant_template(*, rebuild: bool = False) -> bool:
    """Build the template schema if it is missing or out of date; return True if it was built.

    The new template is built under a name of its own and then swapped in by
    a rename in one transaction, so a concurrent clone reads either the old
    or the new template, never a half-built one. Two processes that find the
    template out of date at the same time both build one, and the later swap
    keeps the first one's. With ``rebuild`` the template is built even when
    it is current.
    """
    name = template_schema_name()
    if not rebuild and is_fully_migrated(name):
        return False

    # A session-level advisory lock would serialise the builds, but it stays
    # with the server connection, and a connection pool may hand that to
    # another request before the unlock.
    connection.set_schema_to_public()
    started = time.monotonic()
    build_name = f"{name}_build_{uuid.uuid4().hex[:8]}"
    quote = connection.ops.quote_name
    try:
        migrate_new_schema(build_name)
        with transaction.atomic():
            _lock_swap(shared=False)
            replaced = rebuild or not is_fully_migrated(name)
            with connection.cursor() as cursor:
                if replaced:
                    cursor.execute(f"DROP SCHEMA IF EXISTS {quote(name)} CASCADE")
                    cursor.execute(f"ALTER SCHEMA {quote(build_name)} RENAME TO {quote(name)}")
                else:
                    cursor.execute(f"DROP SCHEMA {quote(build_name)} CASCADE")
    except BaseException:
        # NOTE: a process killed during the build never reaches this line, so
        # its build schema stays behind. It contains no tenant data and can be
        # dropped by hand.
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {quote(build_name)} CASCADE")
        raise
    if replaced:
        logger.info("Built tenant template schema %s in %.1f s", name, time.monotonic() - started)
    return replaced


def clone_template(schema_name: str) -> None:
    """Create ``schema_name`` as a copy of the template, tables and rows alike.

    Must run inside a transaction, which then also covers the new schema. The
    rows copied are the ones the migrations and their post-migrate handlers
    made (content types, permissions), so the clone matches a migrated schema.
    """
    _install_clone_function()
    _lock_swap(shared=True)
    if not schema_exists(template_schema_name()):
        raise RuntimeError(f"Tenant template schema {template_schema_name()!r} is missing; "
                           "run manage.py build_tenant_template.")
    with connection.cursor() as cursor:
        cursor.execute("SELECT clone_schema(%s, %s, 'DATA')", [template_schema_name(), schema_name])
    _restore_constraint_names(schema_name)


def _install_clone_function() -> None:
    """Install the ``clone_schema`` SQL function of django-tenants if missing, and once per process.

    ``CloneSchema.clone_schema`` replaces the function before every clone, and
    two transactions that replace one function at the same time fail with
    "tuple concurrently updated". The swap lock, taken exclusive here, keeps
    the replacement away from running clones. The first call in a process
    replaces it anyway, so an upgrade of django-tenants takes effect.
    """
    global _clone_function_replaced
    if _clone_function_replaced:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_proc WHERE proname = 'clone_schema'")
            if cursor.fetchone() is not None:
                return
    with transaction.atomic():
        _lock_swap(shared=False)
        CloneSchema()._create_clone_schema_function()
    _clone_function_replaced = True


_clone_function_replaced = False


# Pairs each constraint of the clone with the template's constraint of the
# same type and definition on the same table, where their names differ.
_RENAMED_CONSTRAINTS_SQL = """
SELECT DISTINCT new_table.relname, new_constraint.conname, template_constraint.conname
FROM pg_constraint new_constraint
JOIN pg_class new_table ON new_table.oid = new_constraint.conrelid
JOIN pg_namespace new_schema ON new_schema.oid = new_table.relnamespace AND new_schema.nspname = %(new)s
JOIN pg_namespace template_schema ON template_schema.nspname = %(template)s
JOIN pg_class template_table
  ON template_table.relnamespace = template_schema.oid AND template_table.relname = new_table.relname
JOIN pg_constraint template_constraint
  ON template_constraint.conrelid = template_table.oid AND template_constraint.contype = new_constraint.contype
 AND pg_get_constraintdef(template_constraint.oid) = pg_get_constraintdef(new_constraint.oid)
WHERE new_constraint.conname <> template_constraint.conname
  AND NOT EXISTS (SELECT 1 FROM pg_constraint same_name
                  WHERE same_name.conrelid = new_table.oid AND same_name.conname = template_constraint.conname)
"""


def _restore_constraint_names(schema_name: str) -> None:
    """Give the clone's constraints the names they have in the template.

    The clone function of django-tenants 4.0 re-creates multi-column UNIQUE
    constraints under PostgreSQL's default names (``<table>_<columns>_key``),
    so a later migration that removes or alters one by its Django name would
    fail on cloned tenants only.
    """
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(_RENAMED_CONSTRAINTS_SQL, {"new": schema_name, "template": template_schema_name()})
        renames = cursor.fetchall()
        for table, clone_name, template_name in renames:
            cursor.execute(f"ALTER TABLE {quote(schema_name)}.{quote(table)} "
                           f"RENAME CONSTRAINT {quote(clone_name)} TO {quote(template_name)}")
