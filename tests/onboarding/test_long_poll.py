"""``GET /api/v1/onboard/<request_id>``: the EC polls for its certificate with the poll token.

Every poll here uses ``wait=0``, so no Redis subscription is started.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from django.conf import settings
from django_tenants.utils import schema_context

from tests.conftest import client_for
from tests.onboarding.helpers import (
    approve,
    approve_and_issue,
    load_pem_chain,
    onboard,
    poll,
    reject,
)


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def test_poll_pending_request(world):
    submitted = onboard(world.a)

    response = poll(world.a.domain, submitted.request_id, submitted.poll_token)

    assert response.status_code == 200
    assert response.json() == {"request_id": submitted.request_id, "product_id": submitted.product_id,
                               "status": "pending"}


def test_poll_without_wait_parameter(world):
    submitted = onboard(world.a)

    response = client_for(world.a.domain).get(f"/api/v1/onboard/{submitted.request_id}",
                                              HTTP_AUTHORIZATION=f"Bearer {submitted.poll_token}")

    assert response.status_code == 200
    assert response.json()["status"] == "pending"


@pytest.mark.parametrize("token", [None, "ztsp_poll_0000", "garbage"], ids=["missing", "wrong", "garbage"])
def test_poll_wrong_token_returns_401(world, token):
    submitted = onboard(world.a)

    response = poll(world.a.domain, submitted.request_id, token)

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_poll_token"
    assert "status" not in response.json()


def test_poll_token_of_other_request_returns_401(world):
    first = onboard(world.a)
    second = onboard(world.a)

    response = poll(world.a.domain, first.request_id, second.poll_token)

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_poll_token"


def test_poll_at_other_tenant_host_rejected(world):
    submitted = onboard(world.a)
    approve_and_issue("acme", submitted.request_id)

    response = poll(world.b.domain, submitted.request_id, submitted.poll_token)

    # Request ids are per tenant, so globex must not serve acme's request or even its status.
    assert response.status_code in (401, 404)
    body = response.json()
    assert "status" not in body
    assert "certificate" not in body
    assert submitted.product_id not in response.content.decode()


def test_poll_unknown_request_returns_404(world):
    from onboarding.services import poll_token_for

    unknown_id = uuid.uuid4()
    # A correctly derived token for an id with no row, as for a request deleted since.
    with schema_context("acme"):
        token = poll_token_for(SimpleNamespace(pk=unknown_id))

    response = poll(world.a.domain, str(unknown_id), token)

    assert response.status_code == 404
    assert response.json()["code"] == "onboard_request_not_found"


def test_poll_non_uuid_path_returns_404(world):
    submitted = onboard(world.a)

    response = poll(world.a.domain, "not-a-uuid", submitted.poll_token)

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("wait", ["abc", "-1", "nan"])
def test_poll_invalid_wait_returns_400(world, wait):
    submitted = onboard(world.a)

    response = poll(world.a.domain, submitted.request_id, submitted.poll_token, wait=wait)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_wait"


def test_poll_approved_request_is_still_waiting(world):
    submitted = onboard(world.a)
    approve("acme", submitted.request_id)

    response = poll(world.a.domain, submitted.request_id, submitted.poll_token)

    assert response.status_code == 200
    assert response.json()["status"] == "approved"
    assert "certificate" not in response.json()


def test_poll_issued_returns_certificate(world):
    submitted = onboard(world.a)
    approve_and_issue("acme", submitted.request_id)

    response = poll(world.a.domain, submitted.request_id, submitted.poll_token)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "issued"
    [certificate] = load_pem_chain(body["certificate"])
    common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [name.value for name in common_names] == [submitted.product_id]
    assert _public_der(certificate.public_key()) == _public_der(submitted.key.public_key())
    assert body["certificate_serial"] == format(certificate.serial_number, "x")


def test_poll_issued_returns_ca_chain(world):
    from pki.models import IssuingCA
    from tenants.models import DeploymentRootCA

    submitted = onboard(world.a)
    approve_and_issue("acme", submitted.request_id)

    body = poll(world.a.domain, submitted.request_id, submitted.poll_token).json()

    issuing, root = load_pem_chain(body["ca_chain"])
    with schema_context("acme"):
        acme_issuing = load_pem_chain(IssuingCA.objects.get(is_active=True).certificate_pem)[0]
        deployment_root = load_pem_chain(DeploymentRootCA.objects.get().certificate_pem)[0]
    assert issuing == acme_issuing
    assert root == deployment_root
    [certificate] = load_pem_chain(body["certificate"])
    certificate.verify_directly_issued_by(issuing)
    issuing.verify_directly_issued_by(root)


def test_poll_issued_returns_tunnel_endpoint(world):
    submitted = onboard(world.a)
    approve_and_issue("acme", submitted.request_id)

    body = poll(world.a.domain, submitted.request_id, submitted.poll_token).json()

    assert body["tunnel"] == {"host": settings.ZTSP_TUNNEL_PUBLIC_HOST, "port": settings.ZTSP_TUNNEL_PUBLIC_PORT}


def test_poll_rejected_request(world):
    submitted = onboard(world.a)
    reject("acme", submitted.request_id)

    response = poll(world.a.domain, submitted.request_id, submitted.poll_token)

    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    assert "certificate" not in response.json()


def test_poll_superseded_request_reads_rejected(world):
    first = onboard(world.a)
    second = onboard(world.a, first.product_id)
    approve("acme", second.request_id)

    body = poll(world.a.domain, first.request_id, first.poll_token).json()

    assert body["status"] == "rejected"
    assert body["reason"] == "superseded"


def test_poll_replaced_certificate_is_marked_revoked(world):
    first = onboard(world.a)
    approve_and_issue("acme", first.request_id)
    second = onboard(world.a, first.product_id)
    approve_and_issue("acme", second.request_id)

    old = poll(world.a.domain, first.request_id, first.poll_token).json()
    new = poll(world.a.domain, second.request_id, second.poll_token).json()

    assert old["certificate_revoked"] is True
    assert "certificate_revoked" not in new
