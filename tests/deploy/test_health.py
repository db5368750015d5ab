"""Liveness and readiness endpoints against the real test database and Redis."""

from __future__ import annotations

import io
import socket

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from ops.health import expected_migrations


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_liveness_needs_no_database():
    # No django_db mark: any database query in this test raises.
    response = Client(HTTP_HOST="localhost").get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


def test_readiness_ready_when_all_reachable(world):
    response = Client(HTTP_HOST="localhost").get("/readyz")

    assert response.status_code == 200, response.json()
    assert response.json() == {"status": "ready",
                               "checks": {"database": "ok", "migrations": "ok", "redis": "ok"}}


# Only the readiness check opens a connection from the changed settings; Django's own connection stays as it is.
@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_readiness_names_unreachable_database(world, settings):
    settings.DATABASES = {"default": {**settings.DATABASES["default"], "HOST": "127.0.0.1",
                                      "PORT": str(_closed_port())}}

    response = Client(HTTP_HOST="localhost").get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "database_unavailable"
    assert "PostgreSQL" in body["detail"]
    assert body["checks"] == {"database": "database_unavailable", "migrations": "database_unavailable",
                              "redis": "ok"}


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_readiness_applies_libpq_options_of_database_url(world, settings):
    # The test server is a primary, so libpq rejects it for a read-only session.
    database = settings.DATABASES["default"]
    settings.DATABASES = {"default": {**database, "OPTIONS": {**database.get("OPTIONS", {}),
                                                              "target_session_attrs": "read-only"}}}

    response = Client(HTTP_HOST="localhost").get("/readyz")

    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"


def test_readiness_names_unreachable_redis(world, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"

    response = Client(HTTP_HOST="localhost").get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "redis_unavailable"
    assert "Redis" in body["detail"]
    assert body["checks"]["redis"] == "redis_unavailable"
    assert body["checks"]["database"] == "ok"


@pytest.mark.e2e
def test_readiness_names_unmigrated_tenant_schema(world, committed):
    _all_apps, tenant_apps = expected_migrations()
    app, name = sorted(tenant_apps)[0]
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM globex.django_migrations WHERE app = %s AND name = %s RETURNING applied",
                       [app, name])
        (applied,) = cursor.fetchone()
    try:
        response = Client(HTTP_HOST="localhost").get("/readyz")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO globex.django_migrations (app, name, applied) VALUES (%s, %s, %s)",
                           [app, name, applied])

    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "migrations_pending"
    assert "globex" in body["detail"]
    assert "acme" not in body["detail"]
    assert body["checks"]["migrations"] == "migrations_pending"


@pytest.mark.e2e
def test_readiness_names_unmigrated_public_schema(world, committed):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM public.django_migrations WHERE app = 'provisioning' "
                       "AND name = (SELECT max(name) FROM public.django_migrations WHERE app = 'provisioning') "
                       "RETURNING app, name, applied")
        row = cursor.fetchone()
    try:
        response = Client(HTTP_HOST="localhost").get("/readyz")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO public.django_migrations (app, name, applied) VALUES (%s, %s, %s)", row)

    assert response.status_code == 503
    assert response.json()["code"] == "migrations_pending"
    assert "public schema" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_ops_endpoints_not_served_on_tenant_host(world, path):
    response = Client(HTTP_HOST="acme.localhost").get(path)

    # The tenant host's ordinary 404 page: the path does not exist there.
    assert response.status_code == 404


def test_check_readiness_command_reports_ready(world):
    output = io.StringIO()

    call_command("check_readiness", stdout=output)

    assert "database: ok" in output.getvalue()
    assert output.getvalue().rstrip().endswith("Ready.")


def test_check_readiness_command_fails_without_redis(world, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    output = io.StringIO()

    with pytest.raises(CommandError, match="redis"):
        call_command("check_readiness", stdout=output)
    assert "redis: redis_unavailable" in output.getvalue()
