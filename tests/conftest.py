"""Shared fixtures: a world of personas made through the real services, and a live stack.

The ``world`` is created once per test run and committed, because tenant
schemas cannot be created inside a test's transaction cheaply. Tests that
change data use the ``db`` fixture, so their changes roll back.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import VENDOR

PROJECT_DIR = Path(__file__).resolve().parent.parent
ADMIN_PASSWORD = "correct-horse-battery-staple"


@dataclass
class Persona:
    """An MSP with its tenant: the MSP API token, the hosted tenant, its access key and admin."""

    msp: object
    msp_token: str
    msp_user: object
    tenant: object
    domain: str
    tenant_access_key: str
    registration: object
    tenant_admin_username: str


@dataclass
class World:
    vendor_admin: object
    provisioning_key: str
    a: Persona
    b: Persona


def _make_persona(slug: str, schema: str) -> Persona:
    from msp.services.accounts import add_msp_user, create_api_token, create_msp
    from msp.services.registrations import register_tenant
    from tenants.services import create_hosted_tenant, create_tenant_admin, management_url_for

    msp = create_msp(f"{slug} MSP", slug=slug, actor=VENDOR)
    _token, token_text = create_api_token(msp, "tests", actor=VENDOR)
    msp_user = add_msp_user(msp, f"{slug}-user", actor=VENDOR, password=ADMIN_PASSWORD)
    domain = f"{schema}.localhost"
    tenant, access_key = create_hosted_tenant(name=schema.title(), schema_name=schema, domain=domain,
                                              actor=VENDOR, owner_msp=msp)
    create_tenant_admin(tenant, f"{schema}-admin", ADMIN_PASSWORD, actor=VENDOR)
    registration = register_tenant(msp, name=schema.title(), management_url=management_url_for(domain),
                                   access_key=access_key, actor=VENDOR)
    return Persona(msp, token_text, msp_user, tenant, domain, access_key, registration, f"{schema}-admin")


def pytest_collection_modifyitems(items):
    """Run every test that uses the world in a rolled-back transaction, except live-stack tests.

    Live-stack tests talk to server processes, which only see committed
    rows; they write through ``committed`` instead. Marking the others also
    lets pytest-django know that the test database is needed.
    """
    for item in items:
        if "world" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("e2e"):
            if not item.get_closest_marker("django_db"):
                item.add_marker(pytest.mark.django_db)

    # Playwright's sync API keeps an event loop running in the main thread
    # until its session fixture closes, and Django refuses database calls from
    # a thread with a running loop, so the browser tests run last.
    browser_items = [item for item in items if "tests/browser/" in str(item.fspath).replace("\\", "/")]
    if browser_items:
        others = [item for item in items if item not in browser_items]
        items[:] = others + browser_items


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment, django_db_blocker):
    """Create the test database for every run, whatever the selected tests are marked with."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, aliases={"default"}, serialized_aliases=set())
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=0)


@pytest.fixture
def committed(django_db_blocker):
    """Allow database writes that commit at once, for tests of server processes."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture(scope="session")
def world(django_db_setup, django_db_blocker) -> World:
    from django.contrib.auth import get_user_model

    from pki.services import ensure_root_ca
    from provisioning.services.access_keys import create_access_key
    from tenants.services import ensure_public_tenant

    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        ensure_public_tenant()
        ensure_root_ca()
        vendor_admin = get_user_model().objects.create_superuser("vendor-admin", password=ADMIN_PASSWORD)
        _key, provisioning_key = create_access_key("tests", actor=VENDOR)
        world = World(vendor_admin, provisioning_key, _make_persona("msp-a", "acme"),
                      _make_persona("msp-b", "globex"))
    return world


@pytest.fixture(autouse=True)
def _public_schema_after_test():
    yield
    connection.set_schema_to_public()


def client_for(host: str) -> APIClient:
    return APIClient(HTTP_HOST=host)


@pytest.fixture
def public_client(world) -> APIClient:
    return client_for("localhost")


# The live stack: real web server, Celery worker and tunnel gateway processes.


def _database_url() -> str:
    db = connection.settings_dict
    host = db["HOST"] or "localhost"
    host_part = quote(host, safe="") if host.startswith("/") else host
    port = f":{db['PORT']}" if db.get("PORT") else ""
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    return f"postgres://{quote(db['USER'] or '', safe='')}{password}@{host_part}{port}/{db['NAME']}"


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}; log:\n{log.read_text()[-3000:]}")
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listened on port {port} within {timeout} s; log:\n{log.read_text()[-3000:]}")


def _wait_for_text(text: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}; log:\n{log.read_text()[-3000:]}")
        if text in log.read_text():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{text!r} did not appear within {timeout} s; log:\n{log.read_text()[-3000:]}")


@dataclass
class LiveStack:
    web_port: int
    tunnel_port: int
    https_port: int
    env: dict
    logs: Path
    processes: dict

    def url(self, host: str = "localhost") -> str:
        return f"http://{host}:{self.web_port}"


def start_process(name: str, command: list[str], env: dict, logs: Path) -> subprocess.Popen:
    log = logs / f"{name}.log"
    handle = open(log, "w")
    return subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def live_stack(world, django_db_blocker, tmp_path_factory) -> LiveStack:
    """Start uvicorn, a Celery worker (prefork), the tunnel gateway and the EST HTTPS server on the test database."""
    logs = tmp_path_factory.mktemp("live-logs")
    with django_db_blocker.unblock():
        database_url = _database_url()
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "PYTHONUNBUFFERED": "1"}
    web_port = settings.ZTSP_DIRECTOR_PORT
    tunnel_port = settings.ZTSP_TUNNEL_PORT
    https_port = settings.ZTSP_HTTPS_PORT
    processes = {
        "web": start_process("web", [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host",
                                     "127.0.0.1", "--port", str(web_port), "--lifespan", "off",
                                     "--no-proxy-headers", "--log-level", "warning"], env, logs),
        "worker": start_process("worker", [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q",
                                           settings.CELERY_TASK_DEFAULT_QUEUE, "-c", "2", "-l", "info",
                                           "--without-mingle", "--without-gossip"], env, logs),
        "gateway": start_process("gateway", [sys.executable, "manage.py", "run_tunnel_gateway", "--port",
                                             str(tunnel_port)], env, logs),
        "https": start_process("https", [sys.executable, "manage.py", "run_https", "--port", str(https_port),
                                         "--log-level", "warning"], env, logs),
    }
    try:
        _wait_for_port(web_port, processes["web"], logs / "web.log")
        _wait_for_port(tunnel_port, processes["gateway"], logs / "gateway.log")
        _wait_for_port(https_port, processes["https"], logs / "https.log")
        _wait_for_text("ready.", processes["worker"], logs / "worker.log")
    except RuntimeError:
        for process in processes.values():
            stop_process(process)
        raise
    stack = LiveStack(web_port, tunnel_port, https_port, env, logs, processes)
    yield stack
    for process in processes.values():
        stop_process(process)
