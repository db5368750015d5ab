"""``GET /.well-known/est/cacerts`` at a Director tenant host."""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509
from django_tenants.utils import schema_context

from audit.services import Actor
from tests.conftest import client_for
from tests.est.helpers import CACERTS_URL, pkcs7_certificates


def _trusted_cas(schema: str) -> set[x509.Certificate]:
    from pki.services import trusted_issuing_cas

    with schema_context(schema):
        return {x509.load_pem_x509_certificate(ca.certificate_pem.encode()) for ca in trusted_issuing_cas()}


def _root_ca() -> x509.Certificate:
    from tenants.models import DeploymentRootCA

    return x509.load_pem_x509_certificate(DeploymentRootCA.objects.get().certificate_pem.encode())


def test_cacerts_returns_base64_pkcs7(world):
    response = client_for(world.a.domain).get(CACERTS_URL)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pkcs7-mime"
    assert response["Content-Transfer-Encoding"] == "base64"
    assert pkcs7_certificates(response)


def test_cacerts_lists_issuing_cas_and_root(world):
    response = client_for(world.a.domain).get(CACERTS_URL)

    certificates = pkcs7_certificates(response)
    assert set(certificates) == _trusted_cas("acme") | {_root_ca()}
    assert len(certificates) == len(set(certificates))


def test_cacerts_omits_other_tenant_ca(world):
    certificates = set(pkcs7_certificates(client_for(world.a.domain).get(CACERTS_URL)))

    assert not certificates & _trusted_cas("globex")


def test_cacerts_lists_retired_ca_during_overlap(world):
    from pki.services import active_issuing_ca, rotate_issuing_ca

    with schema_context("acme"):
        old = x509.load_pem_x509_certificate(active_issuing_ca().certificate_pem.encode())
        new_ca = rotate_issuing_ca(world.a.tenant, actor=Actor.system("est-tests"), overlap=timedelta(days=1))
    new = x509.load_pem_x509_certificate(new_ca.certificate_pem.encode())

    certificates = pkcs7_certificates(client_for(world.a.domain).get(CACERTS_URL))

    assert old in certificates
    assert new in certificates


def test_cacerts_ignores_pkcs7_accept_header(world):
    # EST clients ask for the PKCS#7 type, which no DRF renderer offers.
    response = client_for(world.a.domain).get(CACERTS_URL, HTTP_ACCEPT="application/pkcs7-mime")

    assert response.status_code == 200
    assert pkcs7_certificates(response)


def test_cacerts_unknown_host_returns_404(world):
    response = client_for("nobody.localhost").get(CACERTS_URL)

    assert response.status_code == 404
    assert response.json()["code"] == "unknown_host"


def test_unknown_est_operation_returns_json_404(world):
    response = client_for(world.a.domain).get("/.well-known/est/csrattrs")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
