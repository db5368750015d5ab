"""The onboard long-poll on the live stack: uvicorn serves it from the ASGI route before Django.

Production serves the long-poll from ``config.asgi``, where the database read runs in
its own thread and a Celery worker issues the certificate, so these tests cover what
the rolled-back tests in test_long_poll.py cannot reach. They commit their data, so
each one makes its own Product IDs.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from django.conf import settings
from django_tenants.utils import schema_context

from tests.factories import make_csr, make_key, new_product_id
from tests.onboarding.helpers import REQUESTS_URL, basic, bearer, load_pem_chain

pytestmark = pytest.mark.e2e


def _call(stack, host: str, path: str, *, body: dict | None = None, headers: dict | None = None,
          timeout: float = 10) -> tuple[int, dict]:
    """Send a request to the live web server on loopback with ``host`` as the Host header."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.web_port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method="POST" if body is not None else "GET",
        headers={"Host": f"{host}:{stack.web_port}", "Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _headers(django_meta: dict) -> dict:
    """Turn the test client's ``HTTP_AUTHORIZATION`` keyword into a real header."""
    return {"Authorization": django_meta["HTTP_AUTHORIZATION"]}


def _onboard(stack, persona, product_id: str | None = None) -> SimpleNamespace:
    product_id = product_id or new_product_id()
    key = make_key()
    csr, _ = make_csr(product_id, key)
    status, body = _call(stack, persona.domain, "/api/v1/onboard",
                         body={"product_id": product_id, "csr": csr, "facts": {"firmware": "1.2.0"}},
                         headers=_headers(bearer(persona.tenant_access_key)))
    assert status == 202, body
    return SimpleNamespace(product_id=product_id, key=key, **body)


def _poll(stack, host: str, submitted, *, token: str | None = None, wait: str = "0") -> tuple[int, dict]:
    token = submitted.poll_token if token is None else token
    return _call(stack, host, f"/api/v1/onboard/{submitted.request_id}?wait={wait}",
                 headers=_headers(bearer(token)), timeout=float(wait) + 10)


def _decide(stack, persona, submitted, decision: str) -> dict:
    status, body = _call(stack, persona.domain, f"{REQUESTS_URL}/{submitted.request_id}/{decision}", body={},
                         headers=_headers(basic(persona.tenant_admin_username)))
    assert status == 200, body
    return body


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def test_live_poll_pending(world, live_stack, committed):
    submitted = _onboard(live_stack, world.a)

    status, body = _poll(live_stack, world.a.domain, submitted)

    assert status == 200
    assert body == {"request_id": submitted.request_id, "product_id": submitted.product_id, "status": "pending"}


def test_live_poll_wakes_on_issue(world, live_stack, committed):
    submitted = _onboard(live_stack, world.a)
    outcome: dict = {}

    def long_poll():
        started = time.monotonic()
        outcome["response"] = _poll(live_stack, world.a.domain, submitted, wait="30")
        outcome["seconds"] = time.monotonic() - started

    waiter = threading.Thread(target=long_poll, daemon=True)
    waiter.start()
    # Let the poll reach its wait before the approval, so the wake-up is what ends it.
    time.sleep(0.5)
    _decide(live_stack, world.a, submitted, "approve")
    waiter.join(timeout=40)

    status, body = outcome["response"]
    assert status == 200
    assert body["status"] == "issued"
    # Well under the 30 s wait: the Celery worker's change woke the poll.
    assert outcome["seconds"] < 20


def test_live_poll_issued_body(world, live_stack, committed):
    from pki.models import IssuingCA
    from tenants.models import DeploymentRootCA

    submitted = _onboard(live_stack, world.a)
    _decide(live_stack, world.a, submitted, "approve")

    status, body = _poll(live_stack, world.a.domain, submitted, wait="30")

    assert status == 200
    assert body["status"] == "issued"
    [certificate] = load_pem_chain(body["certificate"])
    common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [name.value for name in common_names] == [submitted.product_id]
    assert _public_der(certificate.public_key()) == _public_der(submitted.key.public_key())
    issuing, root = load_pem_chain(body["ca_chain"])
    with schema_context("acme"):
        assert issuing == load_pem_chain(IssuingCA.objects.get(is_active=True).certificate_pem)[0]
    assert root == load_pem_chain(DeploymentRootCA.objects.get().certificate_pem)[0]
    certificate.verify_directly_issued_by(issuing)
    assert body["tunnel"] == {"host": settings.ZTSP_TUNNEL_PUBLIC_HOST, "port": settings.ZTSP_TUNNEL_PUBLIC_PORT}


def test_live_poll_rejected(world, live_stack, committed):
    submitted = _onboard(live_stack, world.a)
    _decide(live_stack, world.a, submitted, "reject")

    status, body = _poll(live_stack, world.a.domain, submitted)

    assert status == 200
    assert body["status"] == "rejected"
    assert "certificate" not in body


def test_live_poll_superseded_reads_rejected(world, live_stack, committed):
    first = _onboard(live_stack, world.a)
    second = _onboard(live_stack, world.a, first.product_id)
    _decide(live_stack, world.a, second, "approve")

    status, body = _poll(live_stack, world.a.domain, first)

    assert status == 200
    assert body["status"] == "rejected"
    assert body["reason"] == "superseded"


def test_live_poll_wrong_token_returns_401(world, live_stack, committed):
    submitted = _onboard(live_stack, world.a)

    status, body = _poll(live_stack, world.a.domain, submitted, token="ztsp_poll_0000")

    assert status == 401
    assert body["code"] == "invalid_poll_token"


def test_live_poll_at_other_tenant_rejected(world, live_stack, committed):
    submitted = _onboard(live_stack, world.a)

    status, body = _poll(live_stack, world.b.domain, submitted)

    assert status in (401, 404)
    assert "status" not in body


def test_live_poll_unknown_request_returns_404(world, live_stack, committed):
    from onboarding.services import poll_token_for

    unknown = SimpleNamespace(request_id=str(uuid.uuid4()), poll_token=None)
    with schema_context("acme"):
        unknown.poll_token = poll_token_for(SimpleNamespace(pk=unknown.request_id))

    status, body = _poll(live_stack, world.a.domain, unknown)

    assert status == 404
    assert body["code"] == "onboard_request_not_found"


@pytest.mark.parametrize("wait", ["abc", "-1"])
def test_live_poll_invalid_wait_returns_400(world, live_stack, committed, wait):
    submitted = _onboard(live_stack, world.a)

    status, body = _call(live_stack, world.a.domain, f"/api/v1/onboard/{submitted.request_id}?wait={wait}",
                         headers=_headers(bearer(submitted.poll_token)))

    assert status == 400
    assert body["code"] == "invalid_wait"


@pytest.mark.parametrize("host", ["nobody.localhost", "localhost"])
def test_live_poll_non_tenant_host_returns_404(world, live_stack, committed, host):
    submitted = _onboard(live_stack, world.a)

    status, body = _poll(live_stack, host, submitted)

    assert status == 404
    assert body["code"] == "unknown_host"
