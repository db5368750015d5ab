"""Property-based requests from the served OpenAPI schema against a live uvicorn server: no 5xx.

Schemathesis reads ``/api/schema/`` (drf-spectacular) from a uvicorn server
of this module's own, on loopback and on the test database, and sends valid
and invalid requests to every operation, with the credentials each host and
path needs. The only check is ``not_a_server_error``: a request may be
refused, but never with a 5xx.

The operations are walked with schemathesis's Python API and Hypothesis'
``given``, because its pytest integration (``schemathesis.pytest.from_fixture``
in schemathesis 4.32.5) fails on pytest 9.2 with "'Function' object has no
attribute '_nodeid'".

The requests are sent as a persona of its own (an MSP with a hosted tenant),
made through the same services as the test world. Valid requests change
data, for example by rotating a key, and the other tests rely on the world's
personas as they were made. The server is not the shared live stack's,
because other tests read that server's log.

Each operation gets ``MAX_EXAMPLES`` valid and as many invalid examples. With
the default of 8, the module took about 25 s, server start included, on a
shared 2-core machine.
"""

from __future__ import annotations

import base64
import os
import sys
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup

from tests.conftest import (
    ADMIN_PASSWORD,
    Persona,
    _database_url,
    _make_persona,
    _wait_for_port,
    start_process,
    stop_process,
)
from tests.settings import _free_port

pytestmark = pytest.mark.e2e

# The EST endpoints take base64 text as application/pkcs10, which schemathesis sends like text/plain.
schemathesis.serializer.alias("application/pkcs10", "text/plain")

# Examples per operation and generation mode. Raise ZTSP_FUZZ_EXAMPLES for a deeper search.
MAX_EXAMPLES = int(os.environ.get("ZTSP_FUZZ_EXAMPLES", "8"))
# Paths served by the Provision Server host. Every other path is a Director tenant's.
PROVISION_PREFIXES = ("/api/v1/ztp/", "/api/v1/msp/", "/api/v1/vendor/")


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def fuzz_persona(world, django_db_blocker) -> Persona:
    """An MSP with its hosted tenant, used only by this module, committed for the web server."""
    with django_db_blocker.unblock():
        return _make_persona("msp-fuzz", "fuzz")


@pytest.fixture(scope="module")
def fuzz_server(world, fuzz_persona, django_db_blocker, tmp_path_factory):
    """Start a uvicorn of its own on loopback, so the fuzzing's log lines stay out of the shared live stack's."""
    logs = tmp_path_factory.mktemp("fuzz-logs")
    with django_db_blocker.unblock():
        database_url = _database_url()
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "PYTHONUNBUFFERED": "1"}
    process = start_process("web", [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host",
                                    "127.0.0.1", "--port", str(port), "--lifespan", "off", "--log-level", "warning"],
                            env, logs)
    try:
        _wait_for_port(port, process, logs / "web.log")
        yield port
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def api_schema(fuzz_server):
    url = f"http://127.0.0.1:{fuzz_server}/api/schema/?format=json"
    return schemathesis.openapi.from_url(url, headers={"Host": f"localhost:{fuzz_server}"})


@pytest.fixture(scope="module")
def request_headers(world, fuzz_server, fuzz_persona):
    """Return a function that gives the Host and Authorization headers for an operation's path."""
    port = fuzz_server
    vendor = _basic("vendor-admin", ADMIN_PASSWORD)
    tenant_admin = _basic(fuzz_persona.tenant_admin_username, ADMIN_PASSWORD)
    product_id = "EC100:7c9e6679-7425-40de-944b-e07fc1f90ae7"

    def headers_for(method: str, path: str) -> dict[str, str]:
        if path.startswith(PROVISION_PREFIXES):
            host = f"localhost:{port}"
            if path.startswith("/api/v1/ztp/"):
                authorization = f"Bearer {world.provisioning_key}"
            elif path == "/api/v1/msp/tokens":
                authorization = _basic(fuzz_persona.msp_user.username, ADMIN_PASSWORD)
            elif path.startswith("/api/v1/msp/"):
                authorization = f"Bearer {fuzz_persona.msp_token}"
            else:
                authorization = vendor
            return {"Host": host, "Authorization": authorization}

        host = f"{fuzz_persona.domain}:{port}"
        if path == "/api/v1/onboard":
            return {"Host": host, "Authorization": f"Bearer {fuzz_persona.tenant_access_key}"}
        if path.startswith("/api/v1/director/"):
            return {"Host": host, "Authorization": tenant_admin}
        if path.endswith("/simpleenroll"):
            return {"Host": host, "Authorization": _basic(product_id, fuzz_persona.tenant_access_key)}
        # The long-poll, the PKI files and the rest keep the generated Authorization, if any.
        return {"Host": host}

    return headers_for


# Status codes of the responses, for the summary printed at the end.
STATUSES: Counter[int] = Counter()


def _fuzz_operation(operation, mode: GenerationMode, headers_for) -> list[str]:
    """Send up to MAX_EXAMPLES generated requests to one operation; return a line per server error."""
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def fuzz(case):
        try:
            response = case.call_and_validate(headers=headers_for(case.method, operation.path),
                                              checks=[not_a_server_error], timeout=30)
            STATUSES[response.status_code] += 1
        except FailureGroup as error:
            failures.append(f"{case.method} {case.formatted_path} ({mode.value}): {error}")

    try:
        fuzz()
    except Unsatisfiable:
        # An operation without parameters or body has no invalid request to generate.
        assert mode is GenerationMode.NEGATIVE, operation.label
    return failures


def test_api_returns_no_server_error(api_schema, request_headers):
    failures: list[str] = []
    operations = 0

    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _fuzz_operation(operation, mode, request_headers)

    print(f"{operations} operations, responses by status: {dict(sorted(STATUSES.items()))}")
    # The schema lists 50 operations, so far fewer means part of it failed to load.
    assert operations >= 45, operations
    assert not failures, "\n\n".join(failures)
