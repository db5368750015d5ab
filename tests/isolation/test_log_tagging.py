"""Log records carry the tenant schema of the work they describe, in every process and thread that writes them."""

from __future__ import annotations

import logging
import re
import time
from contextlib import contextmanager

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.test import AsyncClient, Client
from django.utils.module_loading import import_string
from django_tenants.log import TenantContextFilter as ConnectionTenantFilter
from django_tenants.utils import schema_context

from tests.factories import make_csr, new_product_id

logger = logging.getLogger("tests.isolation")


class RecordList(logging.Handler):
    """Keeps every record, tagged by the filter that settings.LOGGING puts on the console handler."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.addFilter(import_string(settings.LOGGING["filters"]["tenant_context"]["()"])())
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def schemas_of(self, pattern: str) -> list[str]:
        return [record.schema_name for record in self.records if re.search(pattern, record.getMessage())]


@contextmanager
def recorded():
    handler = RecordList()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


class HostAsyncClient(AsyncClient):
    """An ASGI test client that sends ``host`` in place of the ``testserver`` that Django's AsyncClient always adds."""

    def __init__(self, host: str):
        super().__init__()
        self.host = host

    async def request(self, **request):
        others = [header for header in request["headers"] if header[0] != b"host"]
        request["headers"] = [(b"host", self.host.encode()), *others]
        return await super().request(**request)


def _onboard_body() -> dict:
    product_id = new_product_id()
    return {"product_id": product_id, "csr": make_csr(product_id)[0], "facts": {}}


def test_console_handler_uses_tenant_filter():
    filter_class = import_string(settings.LOGGING["filters"]["tenant_context"]["()"])

    assert issubclass(filter_class, ConnectionTenantFilter)
    assert settings.LOGGING["handlers"]["console"]["filters"] == ["tenant_context"]
    assert "%(schema_name)s" in settings.LOGGING["formatters"]["plain"]["format"]


def test_record_in_tenant_schema_carries_it(world):
    with recorded() as records, schema_context(world.a.tenant.schema_name):
        logger.warning("probe in tenant")

    assert records.schemas_of("probe in tenant") == ["acme"]


def test_record_in_public_schema_carries_public(world):
    with recorded() as records:
        logger.warning("probe in public")

    assert records.schemas_of("probe in public") == ["public"]


def test_sync_request_logs_carry_tenant(world):
    body = _onboard_body()

    with recorded() as records:
        accepted = Client(HTTP_HOST=world.a.domain).post(
            "/api/v1/onboard", body, content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {world.a.tenant_access_key}")
        refused = Client(HTTP_HOST=world.a.domain).post("/api/v1/onboard", body, content_type="application/json")

    assert accepted.status_code == 202
    assert refused.status_code == 401
    assert records.schemas_of(f"for {body['product_id']} is pending") == ["acme"]
    assert records.schemas_of("^Unauthorized: /api/v1/onboard") == ["acme"]


def test_asgi_response_log_carries_tenant(world):
    # Django's ASGI handler writes this warning from a pool thread, not the request's thread.
    with recorded() as records:
        response = async_to_sync(HostAsyncClient(world.a.domain).post)(
            "/api/v1/onboard", _onboard_body(), content_type="application/json")

    assert response.status_code == 401
    assert records.schemas_of("^Unauthorized: /api/v1/onboard") == ["acme"]


def test_asgi_response_log_at_public_host_carries_public(world):
    with recorded() as records:
        response = async_to_sync(HostAsyncClient("localhost").get)("/api/v1/msp/products")

    assert response.status_code == 401
    assert records.schemas_of("^Unauthorized: /api/v1/msp/products") == ["public"]


def test_request_tag_ends_with_response(world):
    Client(HTTP_HOST=world.a.domain).get("/api/v1/pki/ca")

    with recorded() as records, schema_context(world.b.tenant.schema_name):
        logger.warning("probe after request")

    assert records.schemas_of("probe after request") == ["globex"]


def test_unknown_host_request_drops_previous_tag(world):
    Client(HTTP_HOST=world.a.domain).get("/api/v1/pki/ca")

    with recorded() as records:
        response = async_to_sync(HostAsyncClient("nowhere.localhost").get)("/api/v1/pki/ca")

    assert response.status_code == 404
    assert "acme" not in records.schemas_of("Not Found: /api/v1/pki/ca")


@pytest.fixture
def gateway(world, committed):
    from tests.gateway.helpers import GatewayThread

    running = GatewayThread().start()
    yield running
    running.stop()


def _wait_for(read, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (value := read()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


@pytest.mark.e2e
def test_gateway_tunnel_logs_carry_tenant(world, gateway, tmp_path):
    from tests.gateway.helpers import RawTunnel, onboard_ec

    ec = onboard_ec(world.a)

    with recorded() as records:
        tunnel = RawTunnel(gateway.port, ec.write_files(tmp_path / "ec"))
        reply = tunnel.hello(ec.product_id)
        tunnel.close()
        down = _wait_for(lambda: records.schemas_of(f"^Tunnel down: {re.escape(ec.product_id)}"))

    assert reply["type"] == "hello"
    assert records.schemas_of(f"^Tunnel up: {re.escape(ec.product_id)}") == ["acme"]
    assert down == ["acme"]


@pytest.mark.e2e
def test_gateway_push_log_carries_tenant(world, gateway, tmp_path):
    from tests.gateway.helpers import RawTunnel, onboard_ec

    ec = onboard_ec(world.b)
    tunnel = RawTunnel(gateway.port, ec.write_files(tmp_path / "ec"))
    tunnel.hello(ec.product_id)

    with recorded() as records:
        delivered = gateway.call(gateway.gateway.deliver_push(
            "globex", ec.product_id, {"type": "renew_due", "product_id": ec.product_id}))
    tunnel.close()

    assert delivered is True
    assert records.schemas_of(f"^Sent a renew_due message to {re.escape(ec.product_id)}") == ["globex"]


@pytest.mark.e2e
def test_live_logs_carry_tenant(world, committed, live_stack, tmp_path):
    import json
    import urllib.error
    import urllib.request

    from tests.gateway.helpers import RawTunnel, onboard_ec

    url = f"http://127.0.0.1:{live_stack.web_port}/api/v1/onboard"
    request = urllib.request.Request(url, method="POST", data=json.dumps(_onboard_body()).encode(), headers={
        "Host": f"{world.a.domain}:{live_stack.web_port}", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    ec = onboard_ec(world.a)
    tunnel = RawTunnel(live_stack.tunnel_port, ec.write_files(tmp_path / "ec"))
    tunnel.hello(ec.product_id)
    tunnel.close()

    def lines(name: str, text: str) -> list[str]:
        return [line for line in (live_stack.logs / f"{name}.log").read_text().splitlines() if text in line]

    web = _wait_for(lambda: lines("web", "Unauthorized: /api/v1/onboard"))
    gateway = _wait_for(lambda: lines("gateway", f"Tunnel down: {ec.product_id}"))
    assert refused.value.code == 401
    assert web and all("[acme]" in line for line in web)
    assert gateway and all("[acme]" in line for line in gateway)
    assert all("[acme]" in line for line in lines("gateway", f"Tunnel up: {ec.product_id}"))


@pytest.mark.e2e
def test_live_worker_logs_carry_tenant(world, committed, live_stack):
    from onboarding.models import OnboardRequest
    from onboarding.services import approve_onboard_request, submit_onboard_request
    from tests.isolation.conftest import ACTOR

    product_id = new_product_id()
    with schema_context(world.b.tenant.schema_name):
        submitted = submit_onboard_request(product_id, make_csr(product_id)[0], {}, source_address="127.0.0.1")
        # Committed at once, so the issuance task is queued now and the live worker signs the CSR.
        approve_onboard_request(OnboardRequest.objects.get(pk=submitted.request.pk), actor=ACTOR)

    def issued_lines() -> list[str]:
        text = (live_stack.logs / "worker.log").read_text()
        return [line for line in text.splitlines() if "Issued " in line and " in globex" in line]

    lines = _wait_for(issued_lines, timeout=30)
    assert lines
    assert all("[globex]" in line for line in lines)
