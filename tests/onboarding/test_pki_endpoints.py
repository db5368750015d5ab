"""``GET /api/v1/pki/ca`` and ``GET /api/v1/pki/crl`` at a Director tenant host."""

from __future__ import annotations

from cryptography import x509
from django_tenants.utils import schema_context

from audit.services import Actor
from tests.conftest import client_for
from tests.onboarding.helpers import active_certificates, approve_and_issue, load_pem_chain, onboard


def _active_issuing_ca(schema: str) -> x509.Certificate:
    from pki.models import IssuingCA

    with schema_context(schema):
        return load_pem_chain(IssuingCA.objects.get(is_active=True).certificate_pem)[0]


def _root_ca() -> x509.Certificate:
    from tenants.models import DeploymentRootCA

    return load_pem_chain(DeploymentRootCA.objects.get().certificate_pem)[0]


def _crl(host: str) -> x509.CertificateRevocationList:
    response = client_for(host).get("/api/v1/pki/crl")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pkix-crl"
    return x509.load_der_x509_crl(response.content)


def test_ca_chain_is_issuing_then_root(world):
    response = client_for(world.a.domain).get("/api/v1/pki/ca")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pem-certificate-chain"
    issuing, root = load_pem_chain(response.content.decode())
    assert issuing == _active_issuing_ca("acme")
    assert root == _root_ca()
    issuing.verify_directly_issued_by(root)


def test_ca_chain_differs_per_tenant(world):
    acme_issuing, acme_root = load_pem_chain(client_for(world.a.domain).get("/api/v1/pki/ca").content.decode())
    globex_issuing, globex_root = load_pem_chain(client_for(world.b.domain).get("/api/v1/pki/ca").content.decode())

    assert acme_issuing != globex_issuing
    assert acme_issuing.public_key() != globex_issuing.public_key()
    assert acme_root == globex_root
    assert globex_issuing == _active_issuing_ca("globex")


def test_ca_chain_needs_no_credentials(world):
    # An EC fetches the chain before it has a certificate, and sends no Authorization header.
    response = client_for(world.b.domain).get("/api/v1/pki/ca")

    assert response.status_code == 200


def test_ca_chain_unknown_host_returns_404(world):
    response = client_for("nobody.localhost").get("/api/v1/pki/ca")

    assert response.status_code == 404
    assert response.json()["code"] == "unknown_host"


def test_crl_is_signed_by_tenant_issuing_ca(world):
    issuing = _active_issuing_ca("acme")

    crl = _crl(world.a.domain)

    assert crl.issuer == issuing.subject
    assert crl.is_signature_valid(issuing.public_key())
    assert not crl.is_signature_valid(_active_issuing_ca("globex").public_key())


def test_crl_lists_superseded_certificate(world):
    first = onboard(world.a)
    approve_and_issue("acme", first.request_id)
    [old] = active_certificates("acme", first.product_id)
    second = onboard(world.a, first.product_id)
    approve_and_issue("acme", second.request_id)
    [new] = active_certificates("acme", first.product_id)

    crl = _crl(world.a.domain)

    revoked = crl.get_revoked_certificate_by_serial_number(int(old.serial_hex, 16))
    assert revoked is not None
    reason = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason == x509.ReasonFlags.superseded
    assert crl.get_revoked_certificate_by_serial_number(int(new.serial_hex, 16)) is None


def test_crl_lists_revoked_certificate(world):
    from pki.services import revoke_certificate

    submitted = onboard(world.a)
    approve_and_issue("acme", submitted.request_id)
    [certificate] = active_certificates("acme", submitted.product_id)
    with schema_context("acme"):
        revoke_certificate(certificate, "key_compromise", actor=Actor.system("onboarding-tests"))

    crl = _crl(world.a.domain)

    revoked = crl.get_revoked_certificate_by_serial_number(int(certificate.serial_hex, 16))
    assert revoked is not None
    assert revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise


def test_crl_of_other_tenant_omits_revocation(world):
    from pki.services import revoke_certificate

    submitted = onboard(world.a)
    approve_and_issue("acme", submitted.request_id)
    [certificate] = active_certificates("acme", submitted.product_id)
    with schema_context("acme"):
        revoke_certificate(certificate, "key_compromise", actor=Actor.system("onboarding-tests"))

    crl = _crl(world.b.domain)

    assert crl.get_revoked_certificate_by_serial_number(int(certificate.serial_hex, 16)) is None


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_crl_is_reused_without_revocation(world):
    # Serving the CRL to anonymous clients must not sign and write on every request.
    first = _crl(world.a.domain)

    second = _crl(world.a.domain)

    assert _crl_number(second) == _crl_number(first)


def test_crl_number_increases_after_revocation(world):
    from pki.services import revoke_certificate

    first = _crl(world.a.domain)
    submitted = onboard(world.a)
    approve_and_issue("acme", submitted.request_id)
    [certificate] = active_certificates("acme", submitted.product_id)
    with schema_context("acme"):
        revoke_certificate(certificate, "key_compromise", actor=Actor.system("onboarding-tests"))

    second = _crl(world.a.domain)

    assert _crl_number(second) > _crl_number(first)
