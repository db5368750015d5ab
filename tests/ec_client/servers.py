"""Small real servers for the agent tests, all on 127.0.0.1 with ephemeral ports.

:class:`ThrowawayPki` is a root CA and an issuing CA made with ``cryptography``.
:class:`FakeZtsp` serves the Provision Server and Director HTTP endpoints with
scripted behaviour and runs a TLS 1.3 tunnel server that requires a client
certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ec_client.agent import AgentOptions
from ec_client.state import write_device

PROVISIONING_KEY = "prov-test-key"
TENANT_KEY = "tenant-test-key"
TENANT = "acme"
TUNNEL_HOST = "tunnel.acme.localhost"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


class ThrowawayPki:
    """Root CA and issuing CA that live only for one test run."""

    def __init__(self) -> None:
        now = datetime.now(UTC)
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self._ca(_name("Test Root CA"), self.root_key, self.root_key, _name("Test Root CA"), now)
        self.issuing_key = ec.generate_private_key(ec.SECP256R1())
        self.issuing = self._ca(_name("Test Issuing CA"), self.issuing_key, self.root_key, self.root.subject, now)

    @staticmethod
    def _ca(subject, key, signer, issuer, now) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(signer, hashes.SHA256())
        )

    @property
    def chain_pem(self) -> str:
        """Issuing CA then root CA, as the Director returns it."""
        return _pem(self.issuing) + _pem(self.root)

    def issue(
        self,
        public_key,
        common_name: str,
        *,
        not_after: datetime | None = None,
        client: bool = True,
        dns_name: str | None = None,
    ) -> x509.Certificate:
        now = datetime.now(UTC)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.issuing.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(not_after or now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if dns_name:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        return builder.sign(self.issuing_key, hashes.SHA256())

    def issue_for_csr(self, csr_pem: str, **kwargs: Any) -> str:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        common_name = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        return _pem(self.issue(csr.public_key(), str(common_name), **kwargs))

    def server_ssl_context(self, folder: Path) -> ssl.SSLContext:
        """TLS 1.3 server context for TUNNEL_HOST that requires a client certificate
        chaining to the root CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self.issue(key.public_key(), TUNNEL_HOST, client=False, dns_name=TUNNEL_HOST)
        chain_file = folder / "tunnel-server.pem"
        key_file = folder / "tunnel-server.key"
        chain_file.write_text(_pem(certificate) + _pem(self.issuing))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=_pem(self.root))
        context.load_cert_chain(chain_file, key_file)
        return context


@dataclass
class TunnelSession:
    """What the tunnel server saw on one connection."""

    hello: dict[str, Any]
    peer_common_name: str | None
    heartbeats: list[int] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class OnboardRequest:
    product_id: str
    csr: str
    poll_token: str
    created: float
    polls: int = 0


class FakeZtsp:
    """Provision Server, Director and tunnel server with scripted responses.

    Scripts are lists of ``(status, body, headers)`` tuples consumed in order.
    Once a script is empty, the normal response applies. Every request is logged
    in ``calls`` as ``(endpoint, monotonic time, Host header)``.
    """

    def __init__(self, pki: ThrowawayPki) -> None:
        self.pki = pki
        self.lookup_script: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        self.onboard_script: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        self.poll_script: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        # Seconds after onboarding when a request becomes issued (or rejected).
        self.issue_after = 0.1
        self.decision = "issued"
        # Replaces the certificate PEM issued for a CSR, to test bad certificates.
        self.certificate_override: str | None = None
        self.heartbeat_interval = 30.0
        # Config pushed right after the hello reply, and errors sent instead of it.
        self.push_config: dict[str, Any] | None = None
        self.tunnel_errors: list[dict[str, Any]] = []
        self.calls: list[tuple[str, float, str]] = []
        self.requests: dict[str, OnboardRequest] = {}
        self.sessions: list[TunnelSession] = []
        self.http_port = 0
        self.tunnel_port = 0
        self._runner: web.AppRunner | None = None
        self._tunnel_server: asyncio.Server | None = None
        self._tunnel_writers: set[asyncio.StreamWriter] = set()
        self._folder = tempfile.TemporaryDirectory()

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeZtsp:
        app = web.Application()
        app.router.add_post("/api/v1/ztp/lookup", self._lookup)
        app.router.add_post("/api/v1/onboard", self._onboard)
        app.router.add_get("/api/v1/onboard/{request_id}", self._poll)
        app.router.add_get("/echo-host", self._echo_host)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.http_port = self._runner.addresses[0][1]

        context = self.pki.server_ssl_context(Path(self._folder.name))
        self._tunnel_server = await asyncio.start_server(self._tunnel_session, "127.0.0.1", 0, ssl=context)
        self.tunnel_port = self._tunnel_server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for writer in list(self._tunnel_writers):
            writer.close()
        self._tunnel_server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._tunnel_server.wait_closed(), 2)
        await self._runner.cleanup()
        self._folder.cleanup()

    @property
    def provision_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def director_url(self) -> str:
        return f"http://{TENANT}.localhost:{self.http_port}"

    @property
    def resolve(self) -> tuple[str, ...]:
        """Overrides that make the Director and tunnel names reach 127.0.0.1."""
        return (
            f"*.localhost:{self.http_port}:127.0.0.1",
            f"{TUNNEL_HOST}:{self.tunnel_port}:127.0.0.1",
        )

    def count(self, endpoint: str) -> int:
        return sum(1 for call in self.calls if call[0] == endpoint)

    # ---------------------------------------------------------------- HTTP

    @staticmethod
    def _error(status: int, code: str, detail: str) -> web.Response:
        return web.json_response({"code": code, "detail": detail}, status=status)

    @staticmethod
    def _bearer(request: web.Request) -> str:
        return request.headers.get("Authorization", "").removeprefix("Bearer ")

    def _record(self, endpoint: str, request: web.Request) -> None:
        self.calls.append((endpoint, time.monotonic(), request.headers.get("Host", "")))

    @staticmethod
    def _scripted(script: list) -> web.Response | None:
        if not script:
            return None
        status, body, headers = script.pop(0)
        return web.json_response(body, status=status, headers=headers)

    async def _echo_host(self, request: web.Request) -> web.Response:
        return web.json_response({"host": request.headers.get("Host")})

    async def _lookup(self, request: web.Request) -> web.Response:
        self._record("lookup", request)
        scripted = self._scripted(self.lookup_script)
        if scripted is not None:
            return scripted
        if self._bearer(request) != PROVISIONING_KEY:
            return self._error(401, "invalid_access_key", "provisioning access key not valid")
        body = await request.json()
        return web.json_response(
            {
                "product_id": body["product_id"],
                "director_url": self.director_url,
                "access_key": TENANT_KEY,
            }
        )

    async def _onboard(self, request: web.Request) -> web.Response:
        self._record("onboard", request)
        scripted = self._scripted(self.onboard_script)
        if scripted is not None:
            return scripted
        if self._bearer(request) != TENANT_KEY:
            return self._error(401, "invalid_access_key", "tenant access key not valid")
        body = await request.json()
        # Same Product ID and same CSR give the same request, as the Director does.
        digest = hashlib.sha256((body["product_id"] + body["csr"]).encode()).hexdigest()
        request_id = digest[:16]
        if request_id not in self.requests:
            self.requests[request_id] = OnboardRequest(
                product_id=body["product_id"],
                csr=body["csr"],
                poll_token=f"poll-{digest[16:32]}",
                created=time.monotonic(),
            )
        onboard = self.requests[request_id]
        return web.json_response(
            {"request_id": request_id, "status": "pending", "poll_token": onboard.poll_token},
            status=202,
        )

    async def _poll(self, request: web.Request) -> web.Response:
        self._record("poll", request)
        scripted = self._scripted(self.poll_script)
        if scripted is not None:
            return scripted
        onboard = self.requests.get(request.match_info["request_id"])
        if onboard is None:
            return self._error(404, "not_found", "onboarding request not found")
        if self._bearer(request) != onboard.poll_token:
            return self._error(401, "invalid_poll_token", "poll token not valid")
        onboard.polls += 1

        # Long-poll: respond as soon as the decision is due, or after ``wait``.
        wait = min(float(request.query.get("wait", "0")), 60.0)
        ready_at = onboard.created + self.issue_after
        remaining = ready_at - time.monotonic()
        if remaining > wait:
            await asyncio.sleep(wait)
            return web.json_response({"status": "pending"})
        await asyncio.sleep(max(remaining, 0.0))

        if self.decision == "rejected":
            return web.json_response({"status": "rejected", "detail": "rejected by a test"})
        certificate = self.certificate_override or self.pki.issue_for_csr(onboard.csr)
        return web.json_response(
            {
                "status": "issued",
                "certificate": certificate,
                "ca_chain": self.pki.chain_pem,
                "tunnel": {"host": TUNNEL_HOST, "port": self.tunnel_port},
            }
        )

    # -------------------------------------------------------------- tunnel

    async def _tunnel_session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tunnel_writers.add(writer)
        try:
            line = await reader.readline()
            if not line:
                return
            peer = writer.get_extra_info("peercert") or {}
            common_name = next(
                (value for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName"),
                None,
            )
            session = TunnelSession(hello=json.loads(line), peer_common_name=common_name)
            self.sessions.append(session)

            if self.tunnel_errors:
                await self._send(writer, self.tunnel_errors.pop(0))
                return
            await self._send(
                writer,
                {
                    "type": "hello",
                    "heartbeat_interval": self.heartbeat_interval,
                    "tenant": TENANT,
                    "server_time": datetime.now(UTC).isoformat(),
                },
            )
            if self.push_config is not None:
                await self._send(writer, {"type": "config", **self.push_config})

            while line := await reader.readline():
                message = json.loads(line)
                if message.get("type") == "heartbeat":
                    session.heartbeats.append(message["seq"])
                    await self._send(writer, message)
                elif message.get("type") == "ack":
                    session.acks.append(message)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tunnel_writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
        writer.write(json.dumps(message).encode() + b"\n")
        await writer.drain()


def make_device(state_dir: Path, ztsp: FakeZtsp, number: int = 1) -> Path:
    """Write device.json for test EC ``number`` pointing at ``ztsp`` and return the folder."""
    product_id = f"EC100:00000000-0000-4000-8000-{number:012d}"
    write_device(
        state_dir,
        product_id,
        ztsp.provision_url,
        PROVISIONING_KEY,
        {"model": "EC100", "firmware": "1.0.0", "serial": f"SN{number:06d}", "macs": []},
    )
    return state_dir


def fast_options(ztsp: FakeZtsp, **changes: Any) -> AgentOptions:
    """Agent options with short backoffs and waits, a 15 s safety deadline, and a
    tunnel held for 0.2 s."""
    settings: dict[str, Any] = {
        "resolve": ztsp.resolve,
        "backoff_max": 0.5,
        "backoff_base": 0.05,
        "wait_seconds": 2,
        "deadline_seconds": 15.0,
        "exit_when_connected": True,
        "hold_seconds": 0.2,
    }
    settings.update(changes)
    return AgentOptions(**settings)
