"""``POST /.well-known/est/simpleenroll``: HTTP Basic with the Product ID and the tenant access key."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django_tenants.utils import schema_context

from audit.services import Actor
from pki import crypto
from tests.est.helpers import csr_body, pkcs7_certificates, post_simpleenroll
from tests.factories import make_csr, new_product_id
from tests.onboarding.helpers import approve, approve_and_issue, reject, row_counts, tamper_signature


def _enroll(persona, product_id: str, body: str):
    return post_simpleenroll(persona.domain, body, product_id=product_id, access_key=persona.tenant_access_key)


def _onboard_request(schema: str, request_id: str):
    from onboarding.models import OnboardRequest

    with schema_context(schema):
        return OnboardRequest.objects.get(pk=request_id)


def _der_base64(csr_pem: str) -> str:
    der = x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER)
    return base64.b64encode(der).decode()


def test_simpleenroll_new_csr_returns_202_with_retry_after(world):
    product_id = new_product_id()
    body, _csr, _key = csr_body(product_id)

    response = _enroll(world.a, product_id, body)

    assert response.status_code == 202, response.content
    assert response["Retry-After"] == "30"
    assert response.json()["status"] == "pending"


def test_simpleenroll_records_pending_onboard_request(world):
    product_id = new_product_id()
    body, csr_pem, _key = csr_body(product_id)

    response = _enroll(world.a, product_id, body)

    row = _onboard_request("acme", response.json()["request_id"])
    assert row.product_id == product_id
    assert row.status == "pending"
    assert row.conflict is False
    assert x509.load_pem_x509_csr(row.csr_pem.encode()) == x509.load_pem_x509_csr(csr_pem.encode())


def test_simpleenroll_request_is_marked_as_est(world):
    product_id = new_product_id()
    body, _csr, _key = csr_body(product_id)

    response = _enroll(world.a, product_id, body)

    assert _onboard_request("acme", response.json()["request_id"]).channel == "est"


def test_simpleenroll_certificate_source_is_est_enroll(world):
    from pki.models import IssuedCertificate

    product_id = new_product_id()
    body, _csr, _key = csr_body(product_id)
    request_id = _enroll(world.a, product_id, body).json()["request_id"]

    approve_and_issue("acme", request_id)

    with schema_context("acme"):
        assert IssuedCertificate.objects.get(onboard_request_id=request_id).source == "est_enroll"


def test_simpleenroll_same_csr_returns_same_request(world):
    product_id = new_product_id()
    body, _csr, _key = csr_body(product_id)
    first = _enroll(world.a, product_id, body)
    counts = row_counts("acme")

    second = _enroll(world.a, product_id, body)

    assert second.status_code == 202
    assert second.json()["request_id"] == first.json()["request_id"]
    assert row_counts("acme") == counts


def test_simpleenroll_matches_request_of_onboard_api(world):
    from tests.onboarding.helpers import onboard

    submitted = onboard(world.a)

    response = _enroll(world.a, submitted.product_id, _der_base64(submitted.csr))

    assert response.json()["request_id"] == submitted.request_id


@pytest.mark.parametrize("layout", ["lines", "one_line", "crlf", "pem"])
def test_simpleenroll_accepts_body_layout(world, layout):
    product_id = new_product_id()
    body, csr_pem, _key = csr_body(product_id)
    bodies = {
        "lines": body,
        "one_line": "".join(body.split()),
        "crlf": body.replace("\n", "\r\n"),
        "pem": csr_pem,
    }

    response = _enroll(world.a, product_id, bodies[layout])

    assert response.status_code == 202, response.content


def test_simpleenroll_approved_request_returns_202(world):
    product_id = new_product_id()
    body, _csr, _key = csr_body(product_id)
    request_id = _enroll(world.a, product_id, body).json()["request_id"]
    approve("acme", request_id)

    response = _enroll(world.a, product_id, body)

    assert response.status_code == 202
    assert response.json()["status"] == "approved"


def test_simpleenroll_issued_request_returns_certificate(world):
    from pki.models import IssuedCertificate

    product_id = new_product_id()
    body, _csr, key = csr_body(product_id)
    request_id = _enroll(world.a, product_id, body).json()["request_id"]
    approve_and_issue("acme", request_id)

    response = _enroll(world.a, product_id, body)

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/pkcs7-mime; smime-type=certs-only"
    assert response["Content-Transfer-Encoding"] == "base64"
    [certificate] = pkcs7_certificates(response)
    with schema_context("acme"):
        issued = IssuedCertificate.objects.get(onboard_request_id=request_id)
    assert crypto.serial_hex(certificate) == issued.serial_hex
    assert crypto.product_id_from_certificate(certificate) == product_id
    assert certificate.public_key() == key.public_key()


def test_simpleenroll_wrong_key_returns_401(world):
    product_id = new_product_id()
    body, _csr, _key = csr_body(product_id)

    response = post_simpleenroll(world.a.domain, body, product_id=product_id, access_key="ztsp_tk_000000000000_wrong")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="est"'
    assert response.json()["code"] == "invalid_access_key"


def test_simpleenroll_without_credentials_returns_401(world):
    product_id = new_product_id()
    body, _csr, _key = csr_body(product_id)

    response = post_simpleenroll(world.a.domain, body)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="est"'


def test_simpleenroll_bearer_key_returns_401(world):
    product_id = new_product_id()
    body, _csr, _key = csr_body(product_id)

    response = post_simpleenroll(world.a.domain, body, HTTP_AUTHORIZATION=f"Bearer {world.a.tenant_access_key}")

    assert response.status_code == 401


def test_simpleenroll_other_tenant_key_returns_401(world):
    product_id = new_product_id()
    body, _csr, _key = csr_body(product_id)
    acme_counts = row_counts("acme")
    globex_counts = row_counts("globex")

    response = post_simpleenroll(world.a.domain, body, product_id=product_id, access_key=world.b.tenant_access_key)

    assert response.status_code == 401
    assert row_counts("acme") == acme_counts
    assert row_counts("globex") == globex_counts


def test_simpleenroll_bad_signature_returns_400(world):
    product_id = new_product_id()
    csr_pem, _key = make_csr(product_id)
    counts = row_counts("acme")

    response = _enroll(world.a, product_id, _der_base64(tamper_signature(csr_pem)))

    assert response.status_code == 400
    assert response.json()["code"] == "csr_bad_signature"
    assert row_counts("acme") == counts


def test_simpleenroll_csr_of_other_product_returns_400(world):
    product_id = new_product_id()
    body, _csr, _key = csr_body(new_product_id())

    response = _enroll(world.a, product_id, body)

    assert response.status_code == 400
    assert response.json()["code"] == "csr_subject_mismatch"


@pytest.mark.parametrize("body", ["", "not base64 at all!", "AAAA"])
def test_simpleenroll_malformed_body_returns_400(world, body):
    response = _enroll(world.a, new_product_id(), body)

    assert response.status_code == 400
    assert response.json()["code"] == "csr_malformed"


def test_simpleenroll_invalid_product_id_returns_400(world):
    body, _csr, _key = csr_body("EC100:not-a-uuid")

    response = _enroll(world.a, "EC100:not-a-uuid", body)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_product_id"


def test_simpleenroll_rejected_request_returns_403(world):
    product_id = new_product_id()
    body, _csr, _key = csr_body(product_id)
    reject("acme", _enroll(world.a, product_id, body).json()["request_id"])

    response = _enroll(world.a, product_id, body)

    assert response.status_code == 403
    assert response.json()["code"] == "enrollment_rejected"


def test_simpleenroll_superseded_request_returns_403(world):
    product_id = new_product_id()
    first_body, _csr, _key = csr_body(product_id)
    _enroll(world.a, product_id, first_body)
    second_body, _csr, _key = csr_body(product_id)
    approve("acme", _enroll(world.a, product_id, second_body).json()["request_id"])

    response = _enroll(world.a, product_id, first_body)

    assert response.status_code == 403
    assert response.json()["code"] == "enrollment_superseded"


def test_simpleenroll_revoked_certificate_returns_403(world):
    from pki.models import IssuedCertificate
    from pki.services import revoke_certificate

    product_id = new_product_id()
    body, _csr, _key = csr_body(product_id)
    request_id = _enroll(world.a, product_id, body).json()["request_id"]
    approve_and_issue("acme", request_id)
    with schema_context("acme"):
        issued = IssuedCertificate.objects.get(onboard_request_id=request_id)
        revoke_certificate(issued, "key_compromise", actor=Actor.system("est-tests"))

    response = _enroll(world.a, product_id, body)

    assert response.status_code == 403
    assert response.json()["code"] == "certificate_revoked"
