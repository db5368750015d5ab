"""The whole zero-touch flow on real processes: uvicorn, a prefork Celery worker,
the TLS tunnel gateway, and the simulated EC from ``ec_client``.

These tests share one live stack per run and commit their data, so each test
provisions its own new Product IDs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django_tenants.utils import schema_context

from ec_client.agent import AgentOptions, run_agent
from ec_client.state import write_device
from tests.conftest import ADMIN_PASSWORD
from tests.factories import provision_products

pytestmark = pytest.mark.e2e


def _options(stack, **extra) -> AgentOptions:
    return AgentOptions(
        resolve=(f"*.localhost:{stack.web_port}:127.0.0.1", f"localhost:{stack.tunnel_port}:127.0.0.1"),
        backoff_max=2, wait_seconds=20, deadline_seconds=60, exit_when_connected=True, hold_seconds=1, **extra,
    )


def _run_agent_in_thread(state_dir: Path, options: AgentOptions) -> dict:
    outcome: dict = {}

    def target():
        outcome["result"] = asyncio.run(run_agent(state_dir, options))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


def _director_api(stack, domain: str, path: str, body: dict | None = None, *, username: str) -> dict:
    """Call the Director API of a tenant on the live server as a tenant admin (HTTP Basic)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.web_port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method="POST" if body is not None else "GET",
        headers={
            "Host": f"{domain}:{stack.web_port}",
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(f"{username}:{ADMIN_PASSWORD}".encode()).decode(),
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _approve_when_pending(stack, persona, product_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = _director_api(stack, persona.domain, "/api/v1/director/onboard-requests?status=pending",
                                username=persona.tenant_admin_username)
        for item in pending["results"]:
            if item["product_id"] == product_id:
                return _director_api(
                    stack, persona.domain, f"/api/v1/director/onboard-requests/{item['request_id']}/approve",
                    {"tags": ["e2e"]}, username=persona.tenant_admin_username,
                )
        time.sleep(0.2)
    raise AssertionError(f"{product_id} never appeared in the pending list of {persona.domain}")


@pytest.fixture
def onboarded_ec(world, live_stack, committed, tmp_path):
    """One EC of tenant A taken from boot to tunnel-up; returns (product ID, state folder, agent result)."""
    product_id = provision_products(world.a.msp, world.a.registration)[0]
    state_dir = tmp_path / "ec"
    write_device(state_dir, product_id, live_stack.url("localhost"), world.provisioning_key, {"model": "EC100"})
    outcome = _run_agent_in_thread(state_dir, _options(live_stack))
    _approve_when_pending(live_stack, world.a, product_id)
    outcome["thread"].join(timeout=60)
    return product_id, state_dir, outcome["result"]


def test_ec_reaches_tunnel_up(onboarded_ec, world):
    product_id, _state_dir, result = onboarded_ec

    assert result.phase == "tunnel_up", result.error
    assert result.director_url == world.a.registration.management_url
    with schema_context(world.a.tenant.schema_name):
        from onboarding.models import EdgeController
        from pki.models import IssuedCertificate

        controller = EdgeController.objects.get(product_id=product_id)
        assert controller.state == EdgeController.State.ONBOARDED
        assert controller.tunnel_connected_at is not None
        assert list(controller.tags.values_list("name", flat=True)) == ["e2e"]
        assert IssuedCertificate.objects.filter(product_id=product_id, revoked_at__isnull=True).count() == 1


def test_issued_certificate_passes_openssl_verify(onboarded_ec, tmp_path):
    _product_id, state_dir, _result = onboarded_ec
    chain = (state_dir / "ca_chain.pem").read_text()
    issuing, root = [block + "-----END CERTIFICATE-----\n" for block in chain.split("-----END CERTIFICATE-----")[:2]]
    (tmp_path / "root.pem").write_text(root.strip() + "\n")
    (tmp_path / "issuing.pem").write_text(issuing.strip() + "\n")

    verify = subprocess.run(
        ["openssl", "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", str(tmp_path / "root.pem"),
         "-untrusted", str(tmp_path / "issuing.pem"), str(state_dir / "cert.pem")],
        capture_output=True, text=True, check=False,
    )

    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.strip().endswith("OK")


def _s_client(stack, state_dir: Path, lines: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    chain = (state_dir / "ca_chain.pem").read_text()
    blocks = [block + "-----END CERTIFICATE-----\n" for block in chain.split("-----END CERTIFICATE-----")[:2]]
    (tmp_path / "issuing.pem").write_text(blocks[0].strip() + "\n")
    (tmp_path / "root.pem").write_text(blocks[1].strip() + "\n")
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{stack.tunnel_port}", "-servername", "localhost",
         "-tls1_3", "-cert", str(state_dir / "cert.pem"), "-key", str(state_dir / "key.pem"),
         "-cert_chain", str(tmp_path / "issuing.pem"), "-CAfile", str(tmp_path / "root.pem"),
         "-verify_return_error", "-quiet"],
        input="".join(line + "\n" for line in lines), capture_output=True, text=True, timeout=20, check=False,
    )


def test_openssl_s_client_opens_tunnel(onboarded_ec, live_stack, tmp_path):
    product_id, state_dir, _result = onboarded_ec
    hello = json.dumps({"type": "hello", "product_id": product_id, "firmware": "openssl", "config_version": 0})

    completed = _s_client(live_stack, state_dir, [hello, json.dumps({"type": "heartbeat", "seq": 7})], tmp_path)

    replies = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    assert replies[0]["type"] == "hello", completed.stderr
    assert replies[0]["product_id"] == product_id
    assert {"type": "heartbeat", "seq": 7} in replies


def test_gateway_refuses_revoked_certificate(onboarded_ec, world, live_stack, tmp_path):
    from audit.services import Actor
    from pki.models import IssuedCertificate
    from pki.services import revoke_certificate

    product_id, state_dir, _result = onboarded_ec
    with schema_context(world.a.tenant.schema_name):
        certificate = IssuedCertificate.objects.get(product_id=product_id, revoked_at__isnull=True)
        revoke_certificate(certificate, "key_compromise", actor=Actor.system("e2e"))
    hello = json.dumps({"type": "hello", "product_id": product_id, "firmware": "openssl", "config_version": 0})

    completed = _s_client(live_stack, state_dir, [hello], tmp_path)

    replies = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    assert replies and replies[0] == {"type": "error", "code": "certificate_revoked",
                                      "detail": f"Certificate {certificate.serial_hex} is revoked; re-onboard the EC."}


def test_hello_for_another_product_is_refused(onboarded_ec, live_stack, tmp_path):
    _product_id, state_dir, _result = onboarded_ec
    hello = json.dumps({"type": "hello", "product_id": "EC100:00000000-0000-4000-8000-000000000000"})

    completed = _s_client(live_stack, state_dir, [hello], tmp_path)

    replies = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    assert replies and replies[0]["code"] == "bad_hello"


def test_long_poll_returns_within_a_second_of_issuance(world, live_stack, committed, tmp_path):
    """A waiting long-poll is woken by the worker's notification, not by its timeout."""
    from audit.services import Actor
    from onboarding.models import OnboardRequest
    from onboarding.services import approve_onboard_request, submit_onboard_request
    from tests.factories import make_csr

    product_id = provision_products(world.a.msp, world.a.registration)[0]
    csr_pem, _key = make_csr(product_id)
    with schema_context(world.a.tenant.schema_name):
        submitted = submit_onboard_request(product_id, csr_pem, {}, source_address="127.0.0.1")

    poll = urllib.request.Request(
        f"http://127.0.0.1:{live_stack.web_port}/api/v1/onboard/{submitted.request.pk}?wait=30",
        headers={"Host": f"{world.a.domain}:{live_stack.web_port}",
                 "Authorization": f"Bearer {submitted.poll_token}"},
    )
    answer: dict = {}

    def wait_for_answer():
        with urllib.request.urlopen(poll, timeout=40) as response:
            answer["body"] = json.loads(response.read())
            answer["at"] = time.monotonic()

    waiter = threading.Thread(target=wait_for_answer)
    waiter.start()
    time.sleep(1)
    approved_at = time.monotonic()
    with schema_context(world.a.tenant.schema_name):
        approve_onboard_request(OnboardRequest.objects.get(pk=submitted.request.pk), actor=Actor.system("e2e"))
    waiter.join(timeout=40)

    assert answer["body"]["status"] == "issued"
    assert "BEGIN CERTIFICATE" in answer["body"]["certificate"]
    # Far below the 30 s wait: the poll ended because the worker published the change.
    assert answer["at"] - approved_at < 10


def test_chunked_lookup_body_is_read(world, live_stack, committed):
    """A client that streams its body (Transfer-Encoding: chunked) is served like any other."""
    import http.client

    product_id = provision_products(world.a.msp, world.a.registration)[0]
    body = json.dumps({"product_id": product_id}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", live_stack.web_port, timeout=10)

    connection.request("POST", "/api/v1/ztp/lookup", body=iter([body[:10], body[10:]]), encode_chunked=True,
                       headers={"Host": f"localhost:{live_stack.web_port}", "Content-Type": "application/json",
                                "Authorization": f"Bearer {world.provisioning_key}"})
    response = connection.getresponse()

    assert response.status == 200, response.read()
    assert json.loads(response.read())["product_id"] == product_id


def test_ec_reports_onboarded_to_provision_server(onboarded_ec, world):
    from provisioning.models import Product
    from provisioning.services.reports import ztp_status

    product_id, _state_dir, result = onboarded_ec

    product = Product.objects.get(product_id=product_id)
    assert product.onboarded_at is not None
    assert product.onboarded_certificate_serial == result.cert_serial
    assert ztp_status(product) == "onboarded"
