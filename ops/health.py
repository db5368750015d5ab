"""Readiness checks: PostgreSQL reachable, migrations applied, Redis reachable.

Each check has its own timeout (``ZTSP_READINESS_TIMEOUT`` seconds) and opens
its own connection, outside Django's connection pool. A probe then never
waits for the pool's timeout, and a full pool does not look like a dead database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache

import psycopg
import redis
from django.conf import settings
from django.db.migrations.loader import MigrationLoader

logger = logging.getLogger(__name__)

# Tenant schemas named in the detail of a migrations failure; the rest are counted.
MAX_SCHEMAS_NAMED = 5
# Keys of the database OPTIONS that Django's backend or its pool reads; the rest are libpq parameters.
DJANGO_ONLY_OPTIONS = {"pool", "isolation_level", "server_side_binding", "assume_role", "cursor_factory", "context"}


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one readiness check: ``code`` is set when it failed."""

    name: str
    code: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.code is None


@cache
def expected_migrations() -> tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]]:
    """Return the latest migration of every app, and of every tenant app, as (app label, name) pairs.

    Read from the migration files only, once per process: a deployment
    changes them only with a new release.
    """
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    leaves = frozenset(graph.leaf_nodes())
    tenant_labels = {app.rsplit(".", 1)[-1] for app in settings.TENANT_APPS}
    return leaves, frozenset(node for node in leaves if node[0] in tenant_labels)


def _connect_database() -> psycopg.Connection:
    database = settings.DATABASES["default"]
    timeout = settings.ZTSP_READINESS_TIMEOUT
    # The libpq parameters of DATABASE_URL (sslmode, for example) apply here too.
    parameters = {key: value for key, value in database.get("OPTIONS", {}).items() if key not in DJANGO_ONLY_OPTIONS}
    parameters["options"] = f"{parameters.get('options', '')} -c statement_timeout={int(timeout * 1000)}".strip()
    # libpq takes whole seconds, and 1 is its minimum that means anything.
    parameters["connect_timeout"] = max(1, round(timeout))
    return psycopg.connect(
        host=database["HOST"] or None, port=database["PORT"] or None, dbname=database["NAME"],
        user=database["USER"] or None, password=database["PASSWORD"] or None, autocommit=True, **parameters,
    )


def _missing_in(cursor: psycopg.Cursor, schema: str, expected: frozenset[tuple[str, str]]) -> int:
    names = [f"{app}.{name}" for app, name in expected]
    cursor.execute(
        f'SELECT count(*) FROM "{schema}".django_migrations WHERE app || \'.\' || name = ANY(%s)',  # noqa: S608
        [names],
    )
    return len(expected) - cursor.fetchone()[0]


def _tenant_schemas_behind(cursor: psycopg.Cursor, expected: frozenset[tuple[str, str]]) -> list[str]:
    """Return the tenant schemas that lack one of ``expected``, in one query over every schema.

    Schema names are checked against ``tenants.services.SCHEMA_NAME_RE``
    (lower-case letters, digits, '_') when a tenant is created, so quoting
    them as identifiers is safe.
    """
    cursor.execute("SELECT schema_name FROM public.tenants_tenant WHERE schema_name <> 'public' ORDER BY 1")
    schemas = [row[0] for row in cursor.fetchall()]
    if not schemas or not expected:
        return []
    names = [f"{app}.{name}" for app, name in expected]
    parts = [
        f"SELECT %(schema_{i})s, count(*) FROM \"{schema}\".django_migrations "  # noqa: S608
        f"WHERE app || '.' || name = ANY(%(names)s)"
        for i, schema in enumerate(schemas)
    ]
    params = {"names": names, **{f"schema_{i}": schema for i, schema in enumerate(schemas)}}
    cursor.execute(" UNION ALL ".join(parts), params)
    return sorted(schema for schema, count in cursor.fetchall() if count < len(expected))


def check_database() -> list[CheckResult]:
    """Check that PostgreSQL accepts a connection and that every schema has the latest migrations."""
    try:
        connection = _connect_database()
    except psycopg.Error as error:
        logger.warning("Readiness: PostgreSQL is unreachable: %s", error)
        return [CheckResult("database", "database_unavailable",
                            f"PostgreSQL is unreachable ({type(error).__name__}); check that it runs "
                            "and that DATABASE_URL points at it."),
                CheckResult("migrations", "database_unavailable", "Not checked: PostgreSQL is unreachable.")]

    all_apps, tenant_apps = expected_migrations()
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            public_missing = _missing_in(cursor, "public", all_apps)
            behind = _tenant_schemas_behind(cursor, tenant_apps)
    except psycopg.errors.UndefinedTable:
        return [CheckResult("database"),
                CheckResult("migrations", "migrations_pending",
                            "The database has no migrations applied; run `manage.py migrate_schemas`.")]
    except psycopg.Error as error:
        logger.warning("Readiness: a PostgreSQL query failed: %s", error)
        return [CheckResult("database", "database_unavailable",
                            f"A PostgreSQL query failed ({type(error).__name__}); check the server's log."),
                CheckResult("migrations", "database_unavailable", "Not checked: a PostgreSQL query failed.")]

    if public_missing:
        return [CheckResult("database"),
                CheckResult("migrations", "migrations_pending",
                            f"The public schema lacks {public_missing} of the latest migrations; "
                            "run `manage.py migrate_schemas`.")]
    if behind:
        named = ", ".join(behind[:MAX_SCHEMAS_NAMED])
        more = f" and {len(behind) - MAX_SCHEMAS_NAMED} more" if len(behind) > MAX_SCHEMAS_NAMED else ""
        return [CheckResult("database"),
                CheckResult("migrations", "migrations_pending",
                            f"Tenant schemas {named}{more} lack the latest migrations; "
                            "run `manage.py migrate_schemas`.")]
    return [CheckResult("database"), CheckResult("migrations")]


def check_redis() -> CheckResult:
    """Check that Redis (cache, push channel and, by default, the Celery broker) replies to a PING."""
    timeout = settings.ZTSP_READINESS_TIMEOUT
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except redis.RedisError as error:
        logger.warning("Readiness: Redis is unreachable: %s", error)
        return CheckResult("redis", "redis_unavailable",
                           f"Redis is unreachable ({type(error).__name__}); check that it runs "
                           "and that REDIS_URL points at it.")
    finally:
        client.close()
    return CheckResult("redis")


def run_readiness_checks() -> list[CheckResult]:
    """Run every readiness check and return one result per dependency."""
    return [*check_database(), check_redis()]
