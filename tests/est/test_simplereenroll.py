"""``POST /.well-known/est/simplereenroll``: renewal authenticated by the TLS client certificate.

The TLS server puts the client certificate into the ASGI TLS extension of the
request's scope. These tests build that scope by hand, and
``test_curl_live.py`` sends real certificates over real TLS.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from django.test import RequestFactory
from django_tenants.utils import schema_context

from audit.services import Actor
from pki import crypto
from tests.conftest import client_for
from tests.est.helpers import SIMPLEREENROLL_URL, csr_body, pkcs7_certificates
from tests.factories import make_key
from tests.onboarding.helpers import approve_and_issue, onboard, row_counts


def _issued(persona):
    """Onboard a new EC of ``persona``'s tenant and return its certificate row."""
    from pki.models import IssuedCertificate

    submitted = onboard(persona)
    approve_and_issue(persona.tenant.schema_name, submitted.request_id)
    with schema_context(persona.tenant.schema_name):
        return IssuedCertificate.objects.get(product_id=submitted.product_id, revoked_at__isnull=True)


def _reenroll(persona, certificate_pem: str | None, body: str):
    """Call the view as the TLS server would, with ``certificate_pem`` as the client certificate."""
    from est.views import SimpleReenrollView

    request = RequestFactory().post(SIMPLEREENROLL_URL, body, content_type="application/pkcs10",
                                    HTTP_HOST=persona.domain)
    chain = [certificate_pem] if certificate_pem else []
    request.scope = {"type": "http", "extensions": {"tls": {"client_cert_chain": chain, "tls_version": 0x0304}}}
    request.tenant = persona.tenant
    with schema_context(persona.tenant.schema_name):
        response = SimpleReenrollView.as_view()(request)
    if hasattr(response, "render"):
        # DRF's error responses are rendered by the middleware this call skips.
        response.render()
    return response


def _json(response) -> dict:
    import json

    return json.loads(response.content)


def _certificate_row(schema: str, serial_hex: str):
    from pki.models import IssuedCertificate

    with schema_context(schema):
        return IssuedCertificate.objects.get(serial_hex=serial_hex)


def test_simplereenroll_without_client_certificate_returns_401(world):
    body, _csr, _key = csr_body("EC100:00000000-0000-4000-8000-000000000000")

    response = client_for(world.a.domain).post(SIMPLEREENROLL_URL, body, content_type="application/pkcs10")

    assert response.status_code == 401
    assert response.json()["code"] == "client_certificate_required"


def test_simplereenroll_ignores_certificate_headers(world):
    # A plain HTTP client cannot claim a certificate through a header a proxy might set.
    current = _issued(world.a)
    body, _csr, _key = csr_body(current.product_id)
    counts = row_counts("acme")

    response = client_for(world.a.domain).post(
        SIMPLEREENROLL_URL, body, content_type="application/pkcs10",
        HTTP_X_SSL_CLIENT_CERT=current.certificate_pem.replace("\n", " "),
        HTTP_X_CLIENT_CERT=current.certificate_pem.replace("\n", " "),
    )

    assert response.status_code == 401
    assert row_counts("acme") == counts


def test_simplereenroll_returns_new_certificate(world):
    current = _issued(world.a)
    new_key = make_key()
    body, _csr, _key = csr_body(current.product_id, new_key)

    response = _reenroll(world.a, current.certificate_pem, body)

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/pkcs7-mime; smime-type=certs-only"
    [certificate] = pkcs7_certificates(response)
    assert certificate.public_key() == new_key.public_key()
    assert crypto.product_id_from_certificate(certificate) == current.product_id
    new_row = _certificate_row("acme", crypto.serial_hex(certificate))
    assert new_row.source == "est_reenroll"
    assert new_row.renewal_of_id == current.pk


def test_simplereenroll_supersedes_old_certificate(world):
    current = _issued(world.a)
    body, _csr, _key = csr_body(current.product_id)

    _reenroll(world.a, current.certificate_pem, body)

    old = _certificate_row("acme", current.serial_hex)
    assert old.revoked_at is not None
    assert old.revocation_reason == "superseded"


def test_simplereenroll_records_device_as_actor(world):
    from audit.models import AuditEvent

    current = _issued(world.a)
    body, _csr, _key = csr_body(current.product_id)

    response = _reenroll(world.a, current.certificate_pem, body)

    serial = crypto.serial_hex(pkcs7_certificates(response)[0])
    event = AuditEvent.objects.get(action="certificate.issue", object_id=serial)
    assert event.actor_type == AuditEvent.ActorType.DEVICE
    assert event.actor == current.product_id
    assert event.tenant_schema == "acme"


def test_simplereenroll_revoked_certificate_returns_403(world):
    from pki.services import revoke_certificate

    current = _issued(world.a)
    with schema_context("acme"):
        revoke_certificate(current, "key_compromise", actor=Actor.system("est-tests"))
    body, _csr, _key = csr_body(current.product_id)

    response = _reenroll(world.a, current.certificate_pem, body)

    assert response.status_code == 403
    assert _json(response)["code"] == "certificate_revoked"


def test_simplereenroll_other_tenant_certificate_returns_403(world):
    globex_certificate = _issued(world.b)
    body, _csr, _key = csr_body(globex_certificate.product_id)
    counts = row_counts("acme")

    response = _reenroll(world.a, globex_certificate.certificate_pem, body)

    assert response.status_code == 403
    assert _json(response)["code"] == "unknown_issuer"
    assert row_counts("acme") == counts


def test_simplereenroll_forged_certificate_returns_403(world):
    # Same issuer name and key id as a real certificate, but signed by another key.
    from pki.services import active_issuing_ca

    current = _issued(world.a)
    real = x509.load_pem_x509_certificate(current.certificate_pem.encode())
    with schema_context("acme"):
        issuing = x509.load_pem_x509_certificate(active_issuing_ca().certificate_pem.encode())
    forger_key = make_key()
    builder = (
        x509.CertificateBuilder().subject_name(real.subject).issuer_name(issuing.subject)
        .public_key(real.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(real.not_valid_before_utc).not_valid_after(real.not_valid_after_utc)
    )
    for extension in real.extensions:
        builder = builder.add_extension(extension.value, critical=extension.critical)
    forged = builder.sign(forger_key, hashes.SHA256())
    body, _csr, _key = csr_body(current.product_id)

    response = _reenroll(world.a, crypto.cert_to_pem(forged), body)

    assert response.status_code == 403
    assert _json(response)["code"] == "unknown_issuer"


def test_simplereenroll_csr_of_other_product_returns_400(world):
    current = _issued(world.a)
    body, _csr, _key = csr_body("EC100:00000000-0000-4000-8000-000000000000")

    response = _reenroll(world.a, current.certificate_pem, body)

    assert response.status_code == 400
    assert _json(response)["code"] == "csr_subject_mismatch"
    assert _certificate_row("acme", current.serial_hex).revoked_at is None


def test_simplereenroll_expired_certificate_returns_403(world):
    from pki.models import IssuedCertificate

    current = _issued(world.a)
    with schema_context("acme"):
        IssuedCertificate.objects.filter(pk=current.pk).update(
            not_after=datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1))
    body, _csr, _key = csr_body(current.product_id)

    response = _reenroll(world.a, current.certificate_pem, body)

    assert response.status_code == 403
    assert _json(response)["code"] == "certificate_expired"
