"""What a tenant host serves passes outside tools: pkilint and ``openssl verify`` on the
issued EC certificates, the CA certificates and the CRLs, as served."""

from __future__ import annotations

import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django_tenants.utils import schema_context

from audit.services import Actor
from tests.conftest import client_for
from tests.onboarding.helpers import active_certificates, approve_and_issue, onboard
from tests.pki.test_crypto import run_pkilint


def _issued(persona):
    submitted = onboard(persona)
    approve_and_issue(persona.tenant.schema_name, submitted.request_id)
    return active_certificates(persona.tenant.schema_name, submitted.product_id)[0]


def _served_bundle(persona) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(client_for(persona.domain).get("/api/v1/pki/ca").content)


def _write(path, *certs: x509.Certificate):
    path.write_bytes(b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs))
    return path


def _openssl_verify(tmp_path, leaf_pem: str, issuing: x509.Certificate, root: x509.Certificate, *extra: str):
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(leaf_pem)
    return subprocess.run(
        ["openssl", "verify", "-x509_strict", "-purpose", "sslclient", *extra,
         "-CAfile", str(_write(tmp_path / "root.pem", root)),
         "-untrusted", str(_write(tmp_path / "issuing.pem", issuing)), str(leaf)],
        capture_output=True, text=True, check=False, timeout=30,
    )


def test_issued_ec_certificate_passes_pkilint(world, tmp_path):
    certificate = _issued(world.a)
    path = tmp_path / "ec.pem"
    path.write_text(certificate.certificate_pem)

    assert run_pkilint("lint_pkix_cert", [], path) == []


def test_served_ca_certificates_pass_pkilint(world, tmp_path):
    issuing, root = _served_bundle(world.a)

    assert run_pkilint("lint_pkix_cert", [], _write(tmp_path / "issuing.pem", issuing)) == []
    assert run_pkilint("lint_pkix_cert", [], _write(tmp_path / "root.pem", root)) == []


def test_served_crl_with_revocations_passes_pkilint(world, tmp_path):
    from pki.services import revoke_certificate

    certificate = _issued(world.a)
    with schema_context("acme"):
        revoke_certificate(certificate, "key_compromise", actor=Actor.system("lint-tests"))
    der = client_for(world.a.domain).get(f"/api/v1/pki/crl/{certificate.issuing_ca.key_id}").content
    path = tmp_path / "crl.der"
    path.write_bytes(der)

    assert run_pkilint("lint_crl", ["-t", "CRL", "-p", "PKIX"], path) == []


def test_issued_certificate_passes_openssl_verify_with_served_chain(world, tmp_path):
    certificate = _issued(world.a)
    issuing, root = _served_bundle(world.a)

    verify = _openssl_verify(tmp_path, certificate.certificate_pem, issuing, root)

    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_issued_certificate_passes_openssl_crl_check(world, tmp_path):
    certificate = _issued(world.a)
    issuing, root = _served_bundle(world.a)
    crl = x509.load_der_x509_crl(client_for(world.a.domain).get("/api/v1/pki/crl").content)
    crl_path = tmp_path / "crl.pem"
    crl_path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))

    verify = _openssl_verify(tmp_path, certificate.certificate_pem, issuing, root, "-crl_check",
                             "-CRLfile", str(crl_path))

    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_revoked_certificate_fails_openssl_crl_check(world, tmp_path):
    from pki.services import revoke_certificate

    certificate = _issued(world.a)
    with schema_context("acme"):
        revoke_certificate(certificate, "key_compromise", actor=Actor.system("lint-tests"))
    issuing, root = _served_bundle(world.a)
    crl = x509.load_der_x509_crl(client_for(world.a.domain).get("/api/v1/pki/crl").content)
    crl_path = tmp_path / "crl.pem"
    crl_path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))

    verify = _openssl_verify(tmp_path, certificate.certificate_pem, issuing, root, "-crl_check",
                             "-CRLfile", str(crl_path))

    assert verify.returncode != 0
    assert "certificate revoked" in verify.stdout + verify.stderr


def test_other_tenants_certificate_fails_verify_against_this_tenants_chain(world, tmp_path):
    at_globex = _issued(world.b)
    acme_issuing, root = _served_bundle(world.a)

    verify = _openssl_verify(tmp_path, at_globex.certificate_pem, acme_issuing, root)

    assert verify.returncode != 0
    assert "unable to get local issuer certificate" in verify.stdout + verify.stderr
