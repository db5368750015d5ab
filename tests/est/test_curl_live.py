"""EST over real TLS: ``curl`` and ``openssl`` as the EC's EST client against ``manage.py run_https``.

These tests share the live stack of the end-to-end tests and commit their
data, so each one enrolls new Product IDs.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from django_tenants.utils import schema_context

from audit.services import Actor
from pki import crypto
from tests.factories import new_product_id

pytestmark = pytest.mark.e2e

ACTOR = Actor.system("est-live-tests")


def _run(command: list[str], **options) -> subprocess.CompletedProcess:
    completed = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False, **options)
    assert completed.returncode == 0, f"{command[0]} failed: {completed.stderr}"
    return completed


@dataclass
class Reply:
    status: int
    headers: str
    body: Path


class EstClient:
    """curl against a tenant host of the EST HTTPS server, trusting the root CA only."""

    def __init__(self, stack, persona, folder: Path):
        self.stack = stack
        self.persona = persona
        self.folder = folder
        self.root_pem = folder / "root.pem"
        if not self.root_pem.exists():
            from pki.services import ensure_root_ca

            self.root_pem.write_text(ensure_root_ca().certificate_pem)
        self.calls = 0

    def url(self, operation: str) -> str:
        return f"https://{self.persona.domain}:{self.stack.https_port}/.well-known/est/{operation}"

    def curl(self, operation: str, *options: str) -> Reply:
        self.calls += 1
        headers = self.folder / f"headers-{self.calls}.txt"
        body = self.folder / f"body-{self.calls}.txt"
        completed = _run([
            "curl", "--silent", "--show-error", "--cacert", str(self.root_pem),
            "--resolve", f"{self.persona.domain}:{self.stack.https_port}:127.0.0.1",
            "--dump-header", str(headers), "--output", str(body), "--write-out", "%{http_code}",
            *options, self.url(operation),
        ])
        return Reply(int(completed.stdout), headers.read_text(), body)

    def post_csr(self, operation: str, csr_b64: Path, *options: str) -> Reply:
        return self.curl(operation, "--data-binary", f"@{csr_b64}", "-H", "Content-Type: application/pkcs10",
                         *options)

    def simpleenroll(self, product_id: str, csr_b64: Path) -> Reply:
        return self.post_csr("simpleenroll", csr_b64, "--user", f"{product_id}:{self.persona.tenant_access_key}")


def _new_csr(folder: Path, product_id: str, name: str) -> tuple[Path, Path]:
    """Make a P-256 key and a base64 DER CSR with openssl, as EC firmware would. Return (key, CSR) paths."""
    key = folder / f"{name}.key"
    der = folder / f"{name}.csr.der"
    _run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
          "-keyout", str(key), "-subj", f"/CN={crypto.common_name_for(product_id)}", "-outform", "DER",
          "-out", str(der)])
    b64 = folder / f"{name}.csr.b64"
    _run(["openssl", "base64", "-in", str(der), "-out", str(b64)])
    return key, b64


def _pkcs7_to_pem(reply: Reply, out: Path) -> Path:
    """Decode a base64 certs-only PKCS#7 body with openssl. Return the PEM file of its certificates."""
    der = reply.body.with_suffix(".der")
    _run(["openssl", "base64", "-d", "-in", str(reply.body), "-out", str(der)])
    _run(["openssl", "pkcs7", "-inform", "DER", "-in", str(der), "-print_certs", "-out", str(out)])
    return out


def _issuing_ca_pem(schema: str, folder: Path) -> Path:
    from pki.services import active_issuing_ca

    path = folder / f"{schema}-issuing.pem"
    with schema_context(schema):
        path.write_text(active_issuing_ca().certificate_pem)
    return path


def _verify(client: EstClient, certificate: Path, issuing: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["openssl", "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", str(client.root_pem),
         "-untrusted", str(issuing), str(certificate)],
        capture_output=True, text=True, timeout=30, check=False,
    )


def _approve(schema: str, request_id: str) -> None:
    from onboarding.models import OnboardRequest
    from onboarding.services import approve_onboard_request

    with schema_context(schema):
        approve_onboard_request(OnboardRequest.objects.get(pk=request_id), actor=ACTOR, tags=["est"])


def _enroll_until_issued(client: EstClient, product_id: str, csr_b64: Path, timeout: float = 30) -> Reply:
    """Repeat a simpleenroll until the worker has issued the certificate (the EC would wait Retry-After)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = client.simpleenroll(product_id, csr_b64)
        if reply.status != 202:
            return reply
        time.sleep(0.2)
    raise AssertionError(f"no certificate for {product_id} within {timeout} s")


@dataclass
class EnrolledEc:
    product_id: str
    key: Path
    certificate: Path
    chain: Path
    serial_hex: str


def _enroll(client: EstClient, folder: Path) -> EnrolledEc:
    """Take a new EC through simpleenroll and approval. Return its key, certificate and client chain."""
    import json

    product_id = new_product_id()
    key, csr_b64 = _new_csr(folder, product_id, "ec")
    pending = client.simpleenroll(product_id, csr_b64)
    assert pending.status == 202, pending.body.read_text()
    _approve(client.persona.tenant.schema_name, json.loads(pending.body.read_text())["request_id"])
    issued = _enroll_until_issued(client, product_id, csr_b64)
    assert issued.status == 200, issued.body.read_text()

    certificate = _pkcs7_to_pem(issued, folder / "ec.pem")
    issuing = _issuing_ca_pem(client.persona.tenant.schema_name, folder)
    chain = folder / "ec-chain.pem"
    chain.write_text(certificate.read_text() + issuing.read_text())
    serial = crypto.serial_hex(crypto.load_certificates(certificate.read_text())[0])
    return EnrolledEc(product_id, key, certificate, chain, serial)


@pytest.fixture
def acme_est(world, live_stack, committed, tmp_path) -> EstClient:
    return EstClient(live_stack, world.a, tmp_path)


@pytest.fixture
def enrolled(acme_est, tmp_path) -> EnrolledEc:
    return _enroll(acme_est, tmp_path)


def test_curl_fetches_cacerts(acme_est, tmp_path):
    reply = acme_est.curl("cacerts")

    assert reply.status == 200
    assert "content-type: application/pkcs7-mime" in reply.headers.lower()
    certificates = crypto.load_certificates(_pkcs7_to_pem(reply, tmp_path / "cacerts.pem").read_text())
    root = crypto.load_certificate(acme_est.root_pem.read_text())
    issuing = crypto.load_certificate(_issuing_ca_pem("acme", tmp_path).read_text())
    assert root in certificates
    assert issuing in certificates


def test_curl_simpleenroll_waits_for_approval(acme_est, tmp_path):
    product_id = new_product_id()
    _key, csr_b64 = _new_csr(tmp_path, product_id, "ec")

    reply = acme_est.simpleenroll(product_id, csr_b64)

    assert reply.status == 202, reply.body.read_text()
    assert "retry-after: 30" in reply.headers.lower()


def test_curl_simpleenroll_returns_verifiable_certificate(enrolled, acme_est, tmp_path):
    verify = _verify(acme_est, enrolled.certificate, _issuing_ca_pem("acme", tmp_path))

    assert verify.returncode == 0, verify.stdout + verify.stderr
    certificate = crypto.load_certificate(enrolled.certificate.read_text())
    assert crypto.product_id_from_certificate(certificate) == enrolled.product_id


def test_curl_simplereenroll_renews_certificate(enrolled, acme_est, tmp_path):
    from pki.models import IssuedCertificate

    _new_key, csr_b64 = _new_csr(tmp_path, enrolled.product_id, "renewal")

    reply = acme_est.post_csr("simplereenroll", csr_b64, "--cert", str(enrolled.chain), "--key", str(enrolled.key))

    assert reply.status == 200, reply.body.read_text()
    renewed = _pkcs7_to_pem(reply, tmp_path / "renewed.pem")
    verify = _verify(acme_est, renewed, _issuing_ca_pem("acme", tmp_path))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    renewed_serial = crypto.serial_hex(crypto.load_certificate(renewed.read_text()))
    with schema_context("acme"):
        old = IssuedCertificate.objects.get(serial_hex=enrolled.serial_hex)
        new = IssuedCertificate.objects.get(serial_hex=renewed_serial)
    assert old.revocation_reason == IssuedCertificate.RevocationReason.SUPERSEDED
    assert new.revoked_at is None
    assert new.renewal_of_id == old.pk


def test_curl_simplereenroll_revoked_certificate_returns_403(enrolled, acme_est, tmp_path):
    from pki.models import IssuedCertificate
    from pki.services import revoke_certificate

    with schema_context("acme"):
        revoke_certificate(IssuedCertificate.objects.get(serial_hex=enrolled.serial_hex), "key_compromise",
                           actor=ACTOR)
    _new_key, csr_b64 = _new_csr(tmp_path, enrolled.product_id, "renewal")

    reply = acme_est.post_csr("simplereenroll", csr_b64, "--cert", str(enrolled.chain), "--key", str(enrolled.key))

    assert reply.status == 403
    assert '"certificate_revoked"' in reply.body.read_text()


def test_curl_simplereenroll_other_tenant_certificate_returns_403(world, live_stack, committed, acme_est, tmp_path):
    globex_folder = tmp_path / "globex"
    globex_folder.mkdir()
    globex = _enroll(EstClient(live_stack, world.b, globex_folder), globex_folder)
    _new_key, csr_b64 = _new_csr(tmp_path, globex.product_id, "renewal")

    reply = acme_est.post_csr("simplereenroll", csr_b64, "--cert", str(globex.chain), "--key", str(globex.key))

    assert reply.status == 403
    assert '"unknown_issuer"' in reply.body.read_text()


def test_curl_simplereenroll_without_certificate_returns_401(acme_est, tmp_path):
    _key, csr_b64 = _new_csr(tmp_path, new_product_id(), "ec")

    reply = acme_est.post_csr("simplereenroll", csr_b64)

    assert reply.status == 401
    assert '"client_certificate_required"' in reply.body.read_text()
