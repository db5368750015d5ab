"""Revocation and CA trust enforced by the running tunnel gateway, over real TLS 1.3.

These tests share the session's live stack and commit their data, so each
one onboards its own new EC.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from django.utils import timezone
from django_tenants.utils import schema_context

from audit.services import Actor
from tests.factories import make_csr, make_key, new_product_id
from tests.pki.test_crypto import run_pkilint

pytestmark = pytest.mark.e2e

ACTOR = Actor.system("live-trust-tests")
# The gateway promises to drop a revoked EC's live tunnel within this many seconds.
REVOCATION_DEADLINE = 60


@dataclass
class EcFiles:
    product_id: str
    serial_hex: str
    key: Path
    cert: Path
    chain: Path  # the certificate followed by its issuing CA, as a client sends it
    root: Path


def _issue(persona, tmp_path: Path) -> EcFiles:
    """Onboard a new EC of ``persona``'s tenant through the services and write its key and certificate."""
    from onboarding.models import OnboardRequest
    from onboarding.services import approve_onboard_request, complete_issuance, submit_onboard_request
    from pki.models import IssuedCertificate
    from pki.services import ensure_root_ca

    product_id = new_product_id()
    key = make_key()
    csr, _ = make_csr(product_id, key)
    with schema_context(persona.tenant.schema_name):
        submitted = submit_onboard_request(product_id, csr, {}, source_address="127.0.0.1")
        approve_onboard_request(OnboardRequest.objects.get(pk=submitted.request.pk), actor=ACTOR)
        complete_issuance(submitted.request.pk)
        certificate = IssuedCertificate.objects.select_related("issuing_ca").get(
            product_id=product_id, revoked_at__isnull=True)
    folder = tmp_path / product_id.replace(":", "_")
    folder.mkdir()
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    (folder / "cert.pem").write_text(certificate.certificate_pem)
    (folder / "chain.pem").write_text(certificate.certificate_pem + certificate.issuing_ca.certificate_pem)
    (folder / "root.pem").write_text(ensure_root_ca().certificate_pem)
    return EcFiles(product_id, certificate.serial_hex, folder / "key.pem", folder / "cert.pem", folder / "chain.pem",
                   folder / "root.pem")


class Tunnel:
    """A raw TLS 1.3 client of the gateway that speaks the newline-delimited JSON protocol."""

    def __init__(self, port: int, ec: EcFiles):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_verify_locations(cafile=str(ec.root))
        context.load_cert_chain(str(ec.chain), str(ec.key))
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        self.file = self.sock.makefile("rb")
        self.ec = ec

    def send(self, message: dict) -> None:
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def receive(self, timeout: float = 10) -> dict | None:
        self.sock.settimeout(timeout)
        try:
            line = self.file.readline()
        except (ConnectionError, ssl.SSLError):
            return None
        return json.loads(line) if line else None

    def hello(self) -> dict | None:
        self.send({"type": "hello", "product_id": self.ec.product_id, "firmware": "test", "config_version": 0})
        return self.receive()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


@pytest.fixture
def open_tunnels():
    tunnels: list[Tunnel] = []
    yield tunnels
    for tunnel in tunnels:
        tunnel.close()


@pytest.fixture
def restore_globex_ca(world, committed):
    """Give tenant B its original issuing CA back after a test that rotates it, since the rotation was committed."""
    from pki.models import IssuingCA

    with schema_context("globex"):
        original = IssuingCA.objects.get(is_active=True).pk
    yield
    with schema_context("globex"):
        IssuingCA.objects.filter(is_active=True).exclude(pk=original).update(
            is_active=False, retired_at=timezone.now(), trusted_until=timezone.now() - timedelta(seconds=1))
        IssuingCA.objects.filter(pk=original).update(is_active=True, retired_at=None, trusted_until=None)


def _connect(stack, ec: EcFiles, open_tunnels) -> Tunnel:
    tunnel = Tunnel(stack.tunnel_port, ec)
    open_tunnels.append(tunnel)
    return tunnel


def _wait_for_close(tunnel: Tunnel, deadline: float) -> tuple[dict | None, float]:
    """Send heartbeats until the gateway closes the tunnel; return its last message and when."""
    started = time.monotonic()
    seq = 0
    while time.monotonic() - started < deadline:
        seq += 1
        try:
            tunnel.send({"type": "heartbeat", "seq": seq})
        except (ConnectionError, ssl.SSLError, OSError):
            return None, time.monotonic() - started
        reply = tunnel.receive(timeout=5)
        if reply is None or reply.get("type") == "error":
            return reply, time.monotonic() - started
        time.sleep(1)
    raise AssertionError(f"the tunnel of {tunnel.ec.product_id} stayed open for {deadline} s")


def test_live_tunnel_is_dropped_within_a_minute_of_revocation(world, live_stack, committed, tmp_path, open_tunnels):
    from pki.models import IssuedCertificate
    from pki.services import revoke_certificate

    ec = _issue(world.a, tmp_path)
    tunnel = _connect(live_stack, ec, open_tunnels)
    assert tunnel.hello()["type"] == "hello"

    with schema_context("acme"):
        revoke_certificate(IssuedCertificate.objects.get(serial_hex=ec.serial_hex), "key_compromise", actor=ACTOR)
    last, elapsed = _wait_for_close(tunnel, REVOCATION_DEADLINE + 5)

    assert elapsed < REVOCATION_DEADLINE
    assert last is None or last["code"] == "certificate_revoked"


def test_revoked_certificate_is_refused_at_reconnect(world, live_stack, committed, tmp_path, open_tunnels):
    from pki.models import IssuedCertificate
    from pki.services import revoke_certificate

    ec = _issue(world.a, tmp_path)
    with schema_context("acme"):
        revoke_certificate(IssuedCertificate.objects.get(serial_hex=ec.serial_hex), "key_compromise", actor=ACTOR)

    reply = _connect(live_stack, ec, open_tunnels).hello()

    assert reply is None or reply["code"] == "certificate_revoked"


def test_other_tenants_certificate_opens_only_its_own_tenant(world, live_stack, committed, tmp_path, open_tunnels):
    at_globex = _issue(world.b, tmp_path)

    reply = _connect(live_stack, at_globex, open_tunnels).hello()

    assert reply["type"] == "hello"
    assert reply["tenant"] == "globex"


def test_retired_ca_certificates_work_during_overlap(world, live_stack, committed, tmp_path, open_tunnels,
                                                     restore_globex_ca):
    from pki.services import rotate_issuing_ca

    before = _issue(world.b, tmp_path)
    with schema_context("globex"):
        rotate_issuing_ca(world.b.tenant, actor=ACTOR, overlap=timedelta(days=1))
    after = _issue(world.b, tmp_path)

    assert _connect(live_stack, before, open_tunnels).hello()["type"] == "hello"
    assert _connect(live_stack, after, open_tunnels).hello()["type"] == "hello"


def test_retired_ca_certificates_are_dropped_when_overlap_ends(world, live_stack, committed, tmp_path,
                                                              open_tunnels, restore_globex_ca):
    from pki.models import IssuingCA
    from pki.services import rotate_issuing_ca

    before = _issue(world.b, tmp_path)
    with schema_context("globex"):
        rotate_issuing_ca(world.b.tenant, actor=ACTOR, overlap=timedelta(days=1))
    tunnel = _connect(live_stack, before, open_tunnels)
    assert tunnel.hello()["type"] == "hello"

    with schema_context("globex"):
        IssuingCA.objects.filter(is_active=False, trusted_until__gt=timezone.now()).update(
            trusted_until=timezone.now() - timedelta(seconds=1))
    last, elapsed = _wait_for_close(tunnel, REVOCATION_DEADLINE + 5)
    reconnect = _connect(live_stack, before, open_tunnels).hello()

    assert elapsed < REVOCATION_DEADLINE
    assert last is None or last["code"] == "certificate_revoked"
    assert reconnect is None or reconnect["code"] == "issuing_ca_retired"


def test_tunnel_server_certificate_passes_pkilint_and_verify(world, live_stack, committed, tmp_path):
    from pki.services import ensure_root_ca

    served = ssl.get_server_certificate(("127.0.0.1", live_stack.tunnel_port))
    (tmp_path / "server.pem").write_text(served)
    (tmp_path / "root.pem").write_text(ensure_root_ca().certificate_pem)

    verify = subprocess.run(
        ["openssl", "verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", str(tmp_path / "root.pem"),
         str(tmp_path / "server.pem")], capture_output=True, text=True, check=False, timeout=30,
    )

    assert verify.returncode == 0, verify.stdout + verify.stderr
    # The development gateway certificate also names "localhost", a one-label name that
    # pkilint's domain check refuses; a deployment names its own host instead.
    findings = [finding for result in run_pkilint("lint_pkix_cert", [], tmp_path / "server.pem")
                for finding in result["finding_descriptions"]]
    assert {(finding["code"], finding["message"]) for finding in findings} <= {
        ("pkix.invalid_domain_name_syntax", 'Invalid domain name syntax: "localhost"')}
