"""An in-process tunnel gateway, a raw TLS tunnel client, and ECs onboarded through the real services."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from django.conf import settings
from django_tenants.utils import schema_context

from gateway.server import TunnelGateway, build_server_context
from tests.factories import key_pem, make_csr, new_product_id
from tests.onboarding.helpers import approve_and_issue

PEM_END = "-----END CERTIFICATE-----"


@dataclass
class IssuedEc:
    """An onboarded EC of a tenant: its key, its active certificate and the CA chain (issuing CA, then root)."""

    schema_name: str
    product_id: str
    key: object
    certificate_pem: str
    chain_pem: str

    @property
    def serial_hex(self) -> str:
        return format(x509.load_pem_x509_certificate(self.certificate_pem.encode()).serial_number, "x")

    def write_files(self, folder: Path) -> dict[str, Path]:
        """Write key, certificate, client chain (leaf + issuing CA), issuing CA and root CA as PEM files."""
        folder.mkdir(parents=True, exist_ok=True)
        issuing, root = [block.strip() + f"\n{PEM_END}\n" for block in self.chain_pem.split(PEM_END)[:2]]
        files = {
            "key": (folder / "key.pem", key_pem(self.key).decode()),
            "cert": (folder / "cert.pem", self.certificate_pem),
            "client_chain": (folder / "client_chain.pem", self.certificate_pem.rstrip("\n") + "\n" + issuing),
            "issuing": (folder / "issuing.pem", issuing),
            "root": (folder / "root.pem", root),
        }
        for path, text in files.values():
            path.write_text(text)
        return {name: path for name, (path, _text) in files.items()}


def onboard_ec(persona, product_id: str | None = None) -> IssuedEc:
    """Onboard a new EC at ``persona``'s tenant: submit, approve and issue, as the Director does."""
    from onboarding.services import submit_onboard_request
    from pki.models import IssuedCertificate
    from pki.services import ca_chain_pem

    schema_name = persona.tenant.schema_name
    product_id = product_id or new_product_id()
    csr_pem, key = make_csr(product_id)
    with schema_context(schema_name):
        submitted = submit_onboard_request(product_id, csr_pem, {"firmware": "1.0.0"}, source_address="127.0.0.1")
    approve_and_issue(schema_name, submitted.request.pk)
    with schema_context(schema_name):
        certificate = IssuedCertificate.objects.select_related("issuing_ca").get(product_id=product_id,
                                                                               revoked_at__isnull=True)
        chain = ca_chain_pem(certificate.issuing_ca)
    return IssuedEc(schema_name, product_id, key, certificate.certificate_pem, chain)


def renew_directly(ec: IssuedEc) -> IssuedEc:
    """Renew ``ec``'s certificate with a new key through the service, not the tunnel, under the current settings."""
    from audit.services import Actor
    from pki.models import IssuedCertificate
    from pki.services import ca_chain_pem, renew_certificate
    from tenants.models import Tenant

    csr_pem, key = make_csr(ec.product_id)
    with schema_context(ec.schema_name):
        issued = renew_certificate(ec.serial_hex, csr_pem, tenant=Tenant.objects.get(schema_name=ec.schema_name),
                                   source=IssuedCertificate.Source.TUNNEL_RENEWAL,
                                   actor=Actor.system("gateway-tests"))
        chain = ca_chain_pem(issued.issuing_ca)
    return IssuedEc(ec.schema_name, ec.product_id, key, issued.certificate_pem, chain)


class GatewayThread:
    """A TunnelGateway on 127.0.0.1 with an ephemeral port, run by an event loop in a background thread."""

    def __init__(self, *, heartbeat_interval: int = 30, renew_min_interval: float = 60.0):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tunnel-gateway", daemon=True)
        context = build_server_context(dns_names=["localhost"], ip_addresses=["127.0.0.1"])
        self.gateway = TunnelGateway(server_context=context, heartbeat_interval=heartbeat_interval,
                                     redis_url=settings.REDIS_URL, renew_min_interval=renew_min_interval)
        self.port = 0

    def start(self, port: int = 0) -> GatewayThread:
        self.thread.start()
        server = self.call(self.gateway.start("127.0.0.1", port))
        self.port = server.sockets[0].getsockname()[1]
        return self

    def call(self, coroutine, timeout: float = 30):
        """Run ``coroutine`` on the gateway's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.call(self.gateway.stop())
        # Let the closed sessions run their clean-up (mark the ECs offline).
        self.call(asyncio.sleep(0.5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class RawTunnel:
    """A blocking TLS 1.3 tunnel client made with the ssl module only, as third-party firmware would."""

    def __init__(self, port: int, files: dict[str, Path]):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_verify_locations(cafile=files["root"])
        context.load_cert_chain(certfile=files["client_chain"], keyfile=files["key"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.tls = context.wrap_socket(raw, server_hostname="localhost")
        self.reader = self.tls.makefile("rb")

    def send(self, message: dict) -> None:
        self.tls.sendall(json.dumps(message).encode() + b"\n")

    def receive(self, timeout: float = 10) -> dict | None:
        """Return the next message, or None when the gateway closed the connection."""
        self.tls.settimeout(timeout)
        try:
            line = self.reader.readline()
        except ConnectionResetError:
            return None
        return json.loads(line) if line else None

    def hello(self, product_id: str) -> dict | None:
        self.send({"type": "hello", "product_id": product_id, "firmware": "raw-tls", "config_version": 0})
        return self.receive()

    def close(self) -> None:
        self.reader.close()
        self.tls.close()
