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
* gateway → EC ``{"type": "config", "version", "body"}``: the EC's desired
  configuration, sent after the hello when the EC's ``config_version``
  differs from it, and pushed when it changes (:mod:`gateway.config_delivery`).
* EC → gateway ``{"type": "ack", "version", "status", "detail"?}`` for a
  ``config``, ``status`` ``applied`` or ``failed``; the gateway records it.
* EC → gateway ``{"type": "renew", "csr"}``: a PEM PKCS#10 request with the
  subject of the current certificate, usually for a new key. The gateway
  replies ``{"type": "renewed", "certificate", "certificate_serial",
  "ca_chain", "not_after"}`` (PEM, hex serial, the issuing CA then the root CA
  as PEM, ISO 8601 UTC), or with an ``error`` and keeps the tunnel open.
  Renewing revokes the old certificate as superseded. The tunnel stays up on
  it, but the next connection must use the new certificate. One renewal may
  be in flight per tunnel, and an EC may start at most one per
  ``RENEW_MIN_INTERVAL`` seconds, reconnects included. A faster one gets
  ``renew_rate_limited`` with ``retry_after`` in seconds.
* gateway → EC ``{"type": "renew_due", "not_after", "reason"}``: the Director
  requests a renewal, because the EC's certificate expires at ``not_after``
  (``reason`` ``expiring``) or its issuing CA was retired by a rotation
  (``issuing_ca_retired``). Sent through :mod:`gateway.push`.
* gateway → EC ``{"type": "error", "code", "detail"}``: the reply to a
  rejected ``renew`` or an unknown message type, or the reason before the
  gateway closes the tunnel.
* gateway → EC ``{"type": "reconnect", "reason": "shutdown", "within"}``: the
  gateway is stopping; the EC reconnects (possibly to another gateway behind
  the same address) after a random delay of up to ``within`` seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import ssl
import time
from asyncio import sslproto
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from cryptography import x509
from django.utils import timezone

from common.log_context import log_schema, set_log_schema
from gateway import config_delivery, push, records
from pki import crypto
from pki.services import RenewalRefused

logger = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024
HELLO_TIMEOUT = 10.0
# Heartbeat times are written in batches at most this often (seconds), so
# 10,000 ECs beating every 30 s cost a few writes per second, not hundreds.
HEARTBEAT_FLUSH_INTERVAL = 5.0
# On shutdown, each EC is sent a reconnect message with a random delay of up to this many seconds.
RECONNECT_SPREAD_SECONDS = 10
# How long shutdown waits to hand the reconnect notice to one EC's socket (seconds).
SHUTDOWN_NOTICE_TIMEOUT = 2.0
# How often open tunnels are checked against revocations (seconds).
REVOCATION_CHECK_INTERVAL = 15.0
# An unknown issuing CA triggers a reload of the CA list at most this often.
CA_RELOAD_MIN_INTERVAL = 5.0
# An EC may start one certificate renewal this often (seconds); each costs a
# CA signature and a CRL re-signing.
RENEW_MIN_INTERVAL = 60.0
# Receive buffer of each TLS connection (bytes): one TLS record, at most
# 16 KiB of plaintext plus its header and AEAD overhead, fits. The default,
# asyncio.sslproto.SSLProtocol.max_size in Python 3.11, is 256 KiB and is
# filled with zeros when a connection opens, so 10,000 idle tunnels would
# hold 2.5 GiB.
TLS_READ_BUFFER_BYTES = 17 * 1024


def _in_thread(function):
    return sync_to_async(function, thread_sensitive=False)


@dataclass
class Session:
    # Replaced after a renewal, so that it names the EC's newest certificate.
    peer: records.TunnelPeer
    writer: asyncio.StreamWriter
    address: str | None = None
    connected_at: float = field(default_factory=time.monotonic)
    renewal: asyncio.Task | None = None

    @property
    def renewing(self) -> bool:
        return self.renewal is not None and not self.renewal.done()


class TunnelGateway:
    """The tunnel server.

    With ``redis_url`` set, it also subscribes to the push channel of
    :mod:`gateway.push` and forwards its messages to the ECs connected to it.
    """

    def __init__(self, *, server_context: ssl.SSLContext, heartbeat_interval: int, redis_url: str | None = None,
                 renew_min_interval: float = RENEW_MIN_INTERVAL):
        self.server_context = server_context
        self.heartbeat_interval = heartbeat_interval
        self.renew_min_interval = renew_min_interval
        self.issuers: dict[str, tuple[str, str]] = {}
        self.sessions: dict[tuple[str, str], Session] = {}
        self._heartbeats: dict[str, dict[int, datetime]] = defaultdict(dict)
        self._last_ca_reload = 0.0
        self._server: asyncio.Server | None = None
        self._background: list[asyncio.Task] = []
        self.push_listener = push.PushListener(redis_url, self.deliver_push) if redis_url else None
        # Start time (monotonic) of the last renewal of each (schema, Product ID),
        # kept across reconnects so that reconnecting does not lift the limit.
        self._renewal_started: dict[tuple[str, str], float] = {}
        self._renewals: set[asyncio.Task] = set()
        # The connection handlers running now, so that stop() can let them mark their ECs offline.
        self._handlers: set[asyncio.Task] = set()

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
        # NOTE: asyncio has no per-server setting for this buffer, so the
        # class attribute changes it for every asyncio TLS connection this
        # process opens afterwards, which then reads at most 17 KiB per call.
        sslproto.SSLProtocol.max_size = TLS_READ_BUFFER_BYTES
        self._server = await asyncio.start_server(
            self._handle, host, port, ssl=self.server_context, limit=MAX_LINE_BYTES,
            ssl_handshake_timeout=HELLO_TIMEOUT, backlog=4096,
        )
        self._background = [
            asyncio.create_task(self._flush_heartbeats_forever(), name="heartbeat-flush"),
            asyncio.create_task(self._check_revocations_forever(), name="revocation-check"),
        ]
        if self.push_listener is not None:
            self._background.append(asyncio.create_task(self.push_listener.run(), name="push-listener"))
            # Wait briefly, so that a message published right after start is not missed.
            try:
                await asyncio.wait_for(self.push_listener.subscribed.wait(), timeout=2)
            except TimeoutError:
                logger.warning("Push channel subscription not ready after 2 s; it keeps retrying")
        logger.info("Tunnel gateway listening on %s:%d", host, port)
        return self._server

    async def stop(self) -> None:
        """Stop accepting tunnels, tell every connected EC to reconnect, and close the tunnels.

        Each EC gets ``{"type": "reconnect", "reason": "shutdown", "within"}``: it reconnects
        after a random delay of up to ``within`` seconds, so that the ECs of a stopped gateway
        spread over the remaining gateways instead of arriving all at once.
        """
        for task in self._background:
            task.cancel()
        if self._server is not None:
            self._server.close()
        if self._renewals:
            # A renewal already signed in its thread; let it send the certificate.
            await asyncio.wait(self._renewals, timeout=5)
        sessions = list(self.sessions.values())
        notice = {"type": "reconnect", "reason": "shutdown", "within": RECONNECT_SPREAD_SECONDS}
        # Each notice waits at most a moment for a slow EC's socket, so shutdown stays bounded.
        await asyncio.gather(*(self._notify_and_close(session, notice) for session in sessions))
        if self._handlers:
            # Each handler marks its EC offline as it ends; bounded, because the database may be down.
            _done, pending = await asyncio.wait(set(self._handlers), timeout=SHUTDOWN_NOTICE_TIMEOUT * 2)
            # Connections still in their handshake or hello wait have no session to close: cancel them.
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=SHUTDOWN_NOTICE_TIMEOUT)
        logger.info("Tunnel gateway stopped; sent a reconnect message to %d ECs", len(sessions))
        await self._flush_heartbeats()

    async def _notify_and_close(self, session: Session, notice: dict) -> None:
        try:
            await asyncio.wait_for(self._send(session.writer, notice), timeout=SHUTDOWN_NOTICE_TIMEOUT)
        except (ConnectionError, OSError, TimeoutError):
            pass
        session.writer.close()

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
        try:
            message = json.loads(line)
        except RecursionError as error:
            # json raises RecursionError, not ValueError, for nesting deeper than about 1,000 levels.
            raise ValueError("message is nested too deeply") from error
        if not isinstance(message, dict):
            raise ValueError("message is not a JSON object")
        return message

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._handlers.add(task)
        try:
            await self._handle_connection(reader, writer)
        finally:
            self._handlers.discard(task)

    async def _handle_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
        # This connection's task, and the threads it calls, log as the EC's tenant from here on.
        set_log_schema(peer.schema_name)

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
        session = Session(peer, writer, address[0] if isinstance(address, tuple) else None)
        self.sessions[key] = session
        try:
            config_version = int(hello.get("config_version") or 0)
        except (TypeError, ValueError):
            config_version = 0
        try:
            await _in_thread(records.mark_online)(peer, firmware=str(hello.get("firmware", "")),
                                                  config_version=config_version, address=session.address)
        except Exception:
            # Typically the database is unreachable. The EC reconnects after the error, and the gateway
            # keeps no session for a connection it does not serve.
            logger.exception("Recording the tunnel of %s in %s as online failed", peer.product_id, peer.schema_name)
            if self.sessions.get(key) is session:
                del self.sessions[key]
            await self._reject(writer, "server_error", "The gateway could not record the tunnel; retry.")
            return
        try:
            await self._send(writer, {"type": "hello", "heartbeat_interval": self.heartbeat_interval,
                                      "tenant": peer.schema_name, "product_id": peer.product_id})
            await config_delivery.send_pending_config(lambda message: self._send(writer, message), peer,
                                                      config_version)
            await self._serve(reader, session)
        except (ConnectionError, OSError, TimeoutError, asyncio.IncompleteReadError) as error:
            logger.info("Tunnel of %s ended: %s", peer.product_id, error.__class__.__name__)
        finally:
            if self.sessions.get(key) is session:
                del self.sessions[key]
                self._heartbeats[peer.schema_name].pop(peer.edge_controller_id, None)
                try:
                    await _in_thread(records.mark_offline)(peer)
                except Exception:
                    # NOTE: the EC's row then stays marked online until its next tunnel opens and closes.
                    logger.exception("Recording the tunnel of %s in %s as offline failed", peer.product_id,
                                     peer.schema_name)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, session: Session) -> None:
        # The peer's schema, Product ID and EC row never change, but its
        # certificate serial does after a renewal; read that from the session.
        peer = session.peer
        writer = session.writer
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
                reply = await config_delivery.handle_ack(peer, message)
                if reply is not None:
                    await self._send(writer, reply)
            elif kind == "renew":
                await self._start_renewal(session, message)
            else:
                await self._send(writer, {"type": "error", "code": "unknown_type",
                                          "detail": f"Message type {kind!r} is not supported."})

    # Certificate renewal.

    async def _start_renewal(self, session: Session, message: dict) -> None:
        """Check a ``renew`` message and start the renewal as a task, so heartbeats keep flowing meanwhile."""
        peer = session.peer
        csr_pem = message.get("csr")
        if not isinstance(csr_pem, str) or not csr_pem.strip():
            await self._send(session.writer, {"type": "error", "code": crypto.CSR_MALFORMED,
                                              "detail": "The renew message needs a 'csr' field with a PEM "
                                                        "PKCS#10 request."})
            return
        if session.renewing:
            await self._send(session.writer, {"type": "error", "code": "renew_in_progress",
                                              "detail": "A renewal of this tunnel is in progress; wait for "
                                                        "its reply."})
            return
        key = (peer.schema_name, peer.product_id)
        now = time.monotonic()
        started = self._renewal_started.get(key)
        if started is not None and now - started < self.renew_min_interval:
            retry_after = math.ceil(self.renew_min_interval - (now - started))
            logger.info("Renewal request of %s in %s rate-limited for %d s", peer.product_id, peer.schema_name,
                        retry_after)
            await self._send(session.writer, {"type": "error", "code": "renew_rate_limited",
                                              "detail": f"Only one renewal per {self.renew_min_interval:g} s is "
                                                        f"allowed; retry in {retry_after} s.",
                                              "retry_after": retry_after})
            return

        self._renewal_started[key] = now
        session.renewal = asyncio.create_task(self._renew(session, csr_pem), name=f"renew {peer.product_id}")
        self._renewals.add(session.renewal)
        session.renewal.add_done_callback(self._renewals.discard)

    async def _renew(self, session: Session, csr_pem: str) -> None:
        peer = session.peer
        try:
            renewed = await _in_thread(records.renew_peer_certificate)(peer, csr_pem,
                                                                       source_address=session.address)
        except RenewalRefused as error:
            logger.warning("Renewal of certificate %s of %s in %s rejected: %s %s", peer.serial_hex,
                           peer.product_id, peer.schema_name, error.code, error.detail)
            reply = {"type": "error", "code": error.code, "detail": error.detail}
        except Exception:
            logger.exception("Renewal of certificate %s of %s in %s failed", peer.serial_hex, peer.product_id,
                             peer.schema_name)
            reply = {"type": "error", "code": "server_error",
                     "detail": "The gateway could not renew the certificate; retry later."}
        else:
            # The old certificate is now revoked as superseded. The revocation
            # sweep checks the session's serial, so this keeps the tunnel open
            # until the EC reconnects with the new certificate.
            session.peer = dataclasses.replace(peer, serial_hex=renewed.serial_hex)
            logger.info("Renewed certificate %s of %s in %s as %s", peer.serial_hex, peer.product_id,
                        peer.schema_name, renewed.serial_hex)
            reply = {"type": "renewed", "certificate": renewed.certificate_pem,
                     "certificate_serial": renewed.serial_hex, "ca_chain": renewed.ca_chain_pem,
                     "not_after": renewed.not_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        try:
            await self._send(session.writer, reply)
        except (ConnectionError, OSError) as error:
            # After a successful renewal the EC is left with a revoked certificate and must onboard again.
            logger.warning("Reply of type %s to the renewal of %s in %s was not delivered: %s", reply["type"],
                           peer.product_id, peer.schema_name, error.__class__.__name__)

    # Messages from the Director.

    async def deliver_push(self, schema_name: str, product_id: str, message: dict) -> bool:
        """Write ``message`` to the live session of that EC, if it is on this gateway; return whether it was."""
        session = self.sessions.get((schema_name, product_id))
        with log_schema(schema_name):
            if session is None:
                logger.debug("No tunnel of %s in %s here for a %s message", product_id, schema_name,
                             message["type"])
                return False
            try:
                await self._send(session.writer, message)
            except (ConnectionError, OSError) as error:
                logger.info("Could not send a %s message to %s in %s: %s", message["type"], product_id,
                            schema_name, error.__class__.__name__)
                return False
            logger.info("Sent a %s message to %s in %s", message["type"], product_id, schema_name)
            return True

    # Background work.

    async def _flush_heartbeats(self) -> None:
        batches, self._heartbeats = self._heartbeats, defaultdict(dict)
        for schema_name, seen in batches.items():
            if not seen:
                continue
            with log_schema(schema_name):
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
            self._forget_old_renewals()

    def _forget_old_renewals(self) -> None:
        cutoff = time.monotonic() - self.renew_min_interval
        for key in [key for key, started in self._renewal_started.items() if started < cutoff]:
            del self._renewal_started[key]

    async def drop_revoked(self) -> int:
        """Close the tunnels whose certificate was revoked since they connected; return how many."""
        by_schema: dict[str, list[Session]] = defaultdict(list)
        for session in self.sessions.values():
            by_schema[session.peer.schema_name].append(session)
        dropped = 0
        for schema_name, sessions in by_schema.items():
            with log_schema(schema_name):
                dropped += await self._drop_revoked_of(schema_name, sessions)
        return dropped

    async def _drop_revoked_of(self, schema_name: str, sessions: list[Session]) -> int:
        try:
            revoked = await _in_thread(records.revoked_serials)(
                schema_name, [session.peer.serial_hex for session in sessions]
            )
        except Exception:
            logger.exception("Revocation check of %s failed", schema_name)
            return 0
        dropped = 0
        for session in sessions:
            if session.renewing:
                # The renewal may have revoked the old certificate while
                # the session still names it; check it on the next sweep.
                continue
            # The serial is read again because a renewal may have replaced it since the query.
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
