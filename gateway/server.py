"""The tunnel gateway: a TLS 1.3 server that ECs keep one connection to.

Each EC authenticates with the client certificate its tenant's issuing CA
gave it. The certificate's Authority Key Identifier names the issuing CA and
so the tenant. The tenant is never taken from anything the client sends. The
certificate must be the tenant's active certificate for the Product ID in its
subject, and the EC's ``hello`` must name that same Product ID.

Protocol: newline-delimited JSON, one object per line, at most
``MAX_LINE_BYTES`` per line:

* EC → gateway ``{"type": "hello", "product_id", "firmware", "config_version"}``
* gateway → EC ``{"type": "hello", "heartbeat_interval", "tenant", "product_id"}``
* EC → gateway ``{"type": "heartbeat", "seq"}``, echoed back.
* EC → gateway ``{"type": "ack", "version", "status"}`` for a pushed ``config``.
* gateway → EC ``{"type": "error", "code", "detail"}`` before it closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from asgiref.sync import sync_to_async
from cryptography import x509
from django.utils import timezone

from gateway import records
from pki import crypto

logger = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024
HELLO_TIMEOUT = 10.0
# Heartbeat times are written in batches at most this often (seconds), so
# 10,000 ECs beating every 30 s cost a few writes per second, not hundreds.
HEARTBEAT_FLUSH_INTERVAL = 5.0
# How often open tunnels are checked against revocations (seconds).
REVOCATION_CHECK_INTERVAL = 15.0
# An unknown issuing CA triggers a reload of the CA list at most this often.
CA_RELOAD_MIN_INTERVAL = 5.0


def _in_thread(function):
    return sync_to_async(function, thread_sensitive=False)


@dataclass
class Session:
    peer: records.TunnelPeer
    writer: asyncio.StreamWriter
    connected_at: float = field(default_factory=time.monotonic)


class TunnelGateway:
    def __init__(self, *, server_context: ssl.SSLContext, heartbeat_interval: int):
        self.server_context = server_context
        self.heartbeat_interval = heartbeat_interval
        self.issuers: dict[str, tuple[str, str]] = {}
        self.sessions: dict[tuple[str, str], Session] = {}
        self._heartbeats: dict[str, dict[int, datetime]] = defaultdict(dict)
        self._last_ca_reload = 0.0
        self._server: asyncio.Server | None = None
        self._background: list[asyncio.Task] = []

    # Start and stop.

    async def reload_issuing_cas(self) -> None:
        self.issuers = await _in_thread(records.load_issuing_cas)()
        for _schema, pem in self.issuers.values():
            # Adding a CA to a live context affects later handshakes only.
            self.server_context.load_verify_locations(cadata=pem)
        self._last_ca_reload = time.monotonic()
        logger.info("Tunnel gateway trusts %d tenant issuing CAs", len(self.issuers))

    async def start(self, host: str, port: int) -> asyncio.Server:
        await self.reload_issuing_cas()
        self._server = await asyncio.start_server(
            self._handle, host, port, ssl=self.server_context, limit=MAX_LINE_BYTES,
            ssl_handshake_timeout=HELLO_TIMEOUT, backlog=4096,
        )
        self._background = [
            asyncio.create_task(self._flush_heartbeats_forever(), name="heartbeat-flush"),
            asyncio.create_task(self._check_revocations_forever(), name="revocation-check"),
        ]
        logger.info("Tunnel gateway listening on %s:%d", host, port)
        return self._server

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions.values()):
            session.writer.close()
        await self._flush_heartbeats()

    # One connection.

    async def _send(self, writer: asyncio.StreamWriter, message: dict) -> None:
        writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        await writer.drain()

    async def _reject(self, writer: asyncio.StreamWriter, code: str, detail: str) -> None:
        try:
            await self._send(writer, {"type": "error", "code": code, "detail": detail})
        except (ConnectionError, OSError):
            pass
        writer.close()

    async def _identify(self, writer: asyncio.StreamWriter) -> records.TunnelPeer:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        if not der:
            raise records.PeerRejected("no_client_certificate", "A client certificate is required.")
        certificate = x509.load_der_x509_certificate(der)
        product_id = crypto.product_id_from_certificate(certificate)
        if product_id is None:
            raise records.PeerRejected("not_an_ec_certificate", "The client certificate names no Product ID.")
        issuer_key_id = crypto.authority_key_id_hex(certificate)
        if issuer_key_id not in self.issuers and time.monotonic() - self._last_ca_reload > CA_RELOAD_MIN_INTERVAL:
            await self.reload_issuing_cas()
        if issuer_key_id not in self.issuers:
            raise records.PeerRejected("unknown_issuer", "The certificate's issuing CA belongs to no tenant here.")
        schema_name, _pem = self.issuers[issuer_key_id]
        return await _in_thread(records.authorize_peer)(schema_name, crypto.serial_hex(certificate), product_id)

    async def _read_message(self, reader: asyncio.StreamReader, timeout: float) -> dict | None:
        line = await asyncio.wait_for(reader.readline(), timeout=timeout)
        if not line:
            return None
        message = json.loads(line)
        if not isinstance(message, dict):
            raise ValueError("message is not a JSON object")
        return message

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address = writer.get_extra_info("peername")
        try:
            peer = await self._identify(writer)
        except records.PeerRejected as error:
            logger.warning("Tunnel from %s rejected: %s", address, error.detail)
            await self._reject(writer, error.code, error.detail)
            return
        except Exception:
            logger.exception("Tunnel from %s failed while checking its certificate", address)
            await self._reject(writer, "server_error", "The gateway could not check the certificate; retry.")
            return

        try:
            hello = await self._read_message(reader, HELLO_TIMEOUT)
        except (TimeoutError, ValueError, asyncio.LimitOverrunError, ConnectionError) as error:
            logger.warning("Tunnel of %s closed before a valid hello: %s", peer.product_id, error)
            await self._reject(writer, "hello_expected", "Send a hello message first.")
            return
        if not hello or hello.get("type") != "hello" or hello.get("product_id") != peer.product_id:
            logger.warning("Tunnel of %s sent a wrong hello: %.200r", peer.product_id, hello)
            await self._reject(writer, "bad_hello", "The hello must name the Product ID of the certificate.")
            return

        key = (peer.schema_name, peer.product_id)
        previous = self.sessions.get(key)
        if previous is not None:
            # The EC reconnected before the old connection timed out: keep the new one.
            previous.writer.close()
        session = Session(peer, writer)
        self.sessions[key] = session
        try:
            config_version = int(hello.get("config_version") or 0)
        except (TypeError, ValueError):
            config_version = 0
        await _in_thread(records.mark_online)(peer, firmware=str(hello.get("firmware", "")),
                                              config_version=config_version)
        try:
            await self._send(writer, {"type": "hello", "heartbeat_interval": self.heartbeat_interval,
                                      "tenant": peer.schema_name, "product_id": peer.product_id})
            await self._serve(reader, writer, peer)
        except (ConnectionError, OSError, TimeoutError, asyncio.IncompleteReadError) as error:
            logger.info("Tunnel of %s ended: %s", peer.product_id, error.__class__.__name__)
        finally:
            if self.sessions.get(key) is session:
                del self.sessions[key]
                self._heartbeats[peer.schema_name].pop(peer.edge_controller_id, None)
                await _in_thread(records.mark_offline)(peer)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     peer: records.TunnelPeer) -> None:
        # Three missed heartbeats end the tunnel.
        idle_timeout = self.heartbeat_interval * 3
        while True:
            try:
                message = await self._read_message(reader, idle_timeout)
            except ValueError as error:
                logger.warning("Tunnel of %s sent invalid JSON: %s", peer.product_id, error)
                await self._reject(writer, "invalid_message", "Each line must be one JSON object.")
                return
            if message is None:
                return
            kind = message.get("type")
            if kind == "heartbeat":
                self._heartbeats[peer.schema_name][peer.edge_controller_id] = timezone.now()
                await self._send(writer, {"type": "heartbeat", "seq": message.get("seq")})
            elif kind == "ack":
                logger.info("EC %s acknowledged config version %s", peer.product_id, message.get("version"))
            else:
                await self._send(writer, {"type": "error", "code": "unknown_type",
                                          "detail": f"Message type {kind!r} is not supported."})

    # Background work.

    async def _flush_heartbeats(self) -> None:
        batches, self._heartbeats = self._heartbeats, defaultdict(dict)
        for schema_name, seen in batches.items():
            if seen:
                try:
                    await _in_thread(records.record_heartbeats)(schema_name, seen)
                except Exception:
                    logger.exception("Writing %d heartbeats of %s failed", len(seen), schema_name)

    async def _flush_heartbeats_forever(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_FLUSH_INTERVAL)
            await self._flush_heartbeats()

    async def _check_revocations_forever(self) -> None:
        while True:
            await asyncio.sleep(REVOCATION_CHECK_INTERVAL)
            await self.drop_revoked()

    async def drop_revoked(self) -> int:
        """Close the tunnels whose certificate was revoked since they connected; return how many."""
        by_schema: dict[str, list[Session]] = defaultdict(list)
        for session in self.sessions.values():
            by_schema[session.peer.schema_name].append(session)
        dropped = 0
        for schema_name, sessions in by_schema.items():
            try:
                revoked = await _in_thread(records.revoked_serials)(
                    schema_name, [session.peer.serial_hex for session in sessions]
                )
            except Exception:
                logger.exception("Revocation check of %s failed", schema_name)
                continue
            for session in sessions:
                if session.peer.serial_hex in revoked:
                    logger.warning("Dropping tunnel of %s: certificate %s revoked", session.peer.product_id,
                                   session.peer.serial_hex)
                    await self._reject(session.writer, "certificate_revoked", "The certificate was revoked.")
                    dropped += 1
        return dropped


def build_server_context(*, dns_names: list[str], ip_addresses: list[str], valid_days: int = 30
                         ) -> ssl.SSLContext:
    """Issue the gateway's server certificate from the root CA and build a TLS 1.3 server context."""
    import tempfile
    from pathlib import Path

    from pki.services import root_ca_material

    root_key, root_cert = root_ca_material()
    key, certificate = crypto.issue_server_certificate(root_key, root_cert, dns_names=dns_names,
                                                       ip_addresses=ip_addresses, valid_days=valid_days)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=crypto.cert_to_pem(root_cert))
    # The ssl module loads keys from files only; the files live for this call.
    with tempfile.TemporaryDirectory() as folder:
        cert_path = Path(folder) / "server.pem"
        key_path = Path(folder) / "server.key"
        cert_path.write_text(crypto.cert_to_pem(certificate) + crypto.cert_to_pem(root_cert))
        key_path.write_bytes(crypto.private_key_to_pem(key, None))
        key_path.chmod(0o600)
        context.load_cert_chain(cert_path, key_path)
    return context
