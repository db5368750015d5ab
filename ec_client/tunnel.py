"""Management tunnel client: mutual TLS 1.3 and newline-delimited JSON.

Protocol, one JSON object per line, each line at most 64 KiB:

- client sends ``{"type": "hello", "product_id", "firmware", "config_version"}``;
- server replies ``{"type": "hello", "heartbeat_interval", "tenant", ...}``;
- client sends ``{"type": "heartbeat", "seq": n}`` every interval, the server echoes it;
- server may push ``{"type": "config", "version", "body"}``, which the client
  stores in ``config.json`` and acknowledges with ``{"type": "ack", "version", "status"}``;
- client may send ``{"type": "renew", "csr"}``, and the server replies
  ``{"type": "renewed", "certificate", "certificate_serial", "ca_chain", "not_after"}``
  or with an ``error`` that leaves the tunnel open;
- server may push ``{"type": "renew_due", "not_after", "reason"}`` to request a renewal;
- server may send ``{"type": "error", "code", "detail"}`` and close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ec_client.http import Backoff, RepeatLimitedLog, ResolveOverrides
from ec_client.state import (
    CA_CHAIN_FILE,
    CERT_FILE,
    CLIENT_CHAIN_FILE,
    CONFIG_FILE,
    KEY_FILE,
    atomic_write,
    write_json,
)

logger = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024
DEFAULT_HEARTBEAT_INTERVAL = 30.0
# Bounds on the server's heartbeat_interval, in seconds, so that a bad value
# neither floods the server nor hides a dead connection for hours.
MIN_HEARTBEAT_INTERVAL = 0.1
MAX_HEARTBEAT_INTERVAL = 3600.0
# A connection is dead when nothing arrived for this many heartbeat intervals.
MISSED_HEARTBEATS = 3
CONNECT_TIMEOUT = 20.0
HELLO_TIMEOUT = 30.0


class TunnelClosed(Exception):
    """A tunnel connection ended, for the reason in the message."""


class ReconnectRequested(Exception):
    """The gateway asked the EC to reconnect, for example because it is shutting down."""

    # Maximum delay (seconds) the EC waits when the gateway sends no window.
    DEFAULT_WITHIN = 10.0

    def __init__(self, message: dict[str, Any]):
        self.reason = str(message.get("reason") or "unspecified")
        try:
            within = float(message.get("within", self.DEFAULT_WITHIN))
        except (TypeError, ValueError):
            within = self.DEFAULT_WITHIN
        # A bad or hostile value must neither stall the EC nor make it reconnect in a tight loop.
        self.within = min(max(within, 0.0), 300.0) if within == within else self.DEFAULT_WITHIN
        super().__init__(f"reconnect requested: {self.reason}")


class CertificateExpired(Exception):
    """cert.pem has expired, so the agent must onboard again before reconnecting."""


class CertificateRevoked(Exception):
    """The server rejected cert.pem as revoked or from a retired CA, so the agent must onboard again."""


# Error codes of a rejected hello that no retry with the same certificate can fix.
CERTIFICATE_REJECTED_CODES = frozenset({"certificate_revoked", "issuing_ca_retired"})


def client_chain_pem(certificate_pem: bytes, ca_chain_pem: bytes) -> bytes:
    """Return the chain the client sends in TLS: the leaf certificate, then the issuing
    CA (the first certificate of the CA chain)."""
    chain = x509.load_pem_x509_certificates(ca_chain_pem)
    issuing = chain[0].public_bytes(serialization.Encoding.PEM)
    return certificate_pem.rstrip(b"\n") + b"\n" + issuing


def write_client_chain(state_dir: Path) -> Path:
    """Write ``client_chain.pem`` from ``cert.pem`` and ``ca_chain.pem``."""
    path = state_dir / CLIENT_CHAIN_FILE
    atomic_write(path, client_chain_pem((state_dir / CERT_FILE).read_bytes(), (state_dir / CA_CHAIN_FILE).read_bytes()))
    return path


def build_ssl_context(state_dir: Path) -> ssl.SSLContext:
    """Create the client TLS 1.3 context: client certificate chain plus key.pem, and the
    root CA (the last certificate of ``ca_chain.pem``) as the only trust anchor."""
    chain = x509.load_pem_x509_certificates((state_dir / CA_CHAIN_FILE).read_bytes())
    root_pem = chain[-1].public_bytes(serialization.Encoding.PEM).decode()
    client_chain = state_dir / CLIENT_CHAIN_FILE
    if not client_chain.exists():
        write_client_chain(state_dir)

    # PROTOCOL_TLS_CLIENT turns on check_hostname and CERT_REQUIRED.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(cadata=root_pem)
    context.load_cert_chain(certfile=client_chain, keyfile=state_dir / KEY_FILE)
    return context


def read_config_version(state_dir: Path) -> int:
    """Return the version of the stored ``config.json``, or 0 if there is none."""
    try:
        document = json.loads((state_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return 0
    version = document.get("version") if isinstance(document, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else 0


def _encode(message: dict[str, Any]) -> bytes:
    line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
    if len(line) > MAX_LINE_BYTES:
        raise ValueError(f"tunnel message of {len(line)} bytes exceeds {MAX_LINE_BYTES} bytes")
    return line


def _heartbeat_interval(hello: dict[str, Any], override: float | None) -> float:
    if override is not None:
        return override
    value = hello.get("heartbeat_interval")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return DEFAULT_HEARTBEAT_INTERVAL
    return min(max(float(value), MIN_HEARTBEAT_INTERVAL), MAX_HEARTBEAT_INTERVAL)


class TunnelClient:
    """Client that keeps one management tunnel open, reconnecting with backoff and jitter.

    ``on_connected`` is called with the server's hello each time a connection
    reaches that point, and ``on_disconnected`` with the reason each time a
    connection attempt or a connection ends. ``on_renew_due`` is called with
    each ``renew_due`` message. ``connect_slots`` (optional, shared by a fleet) bounds
    how many agents run the TCP and TLS handshake at once.
    """

    def __init__(
        self,
        *,
        state_dir: Path,
        product_id: str,
        firmware: str,
        host: str,
        port: int,
        overrides: ResolveOverrides,
        backoff: Backoff,
        heartbeat_override: float | None = None,
        certificate_not_after: datetime | None = None,
        on_connected: Callable[[dict[str, Any]], None] | None = None,
        on_disconnected: Callable[[str], None] | None = None,
        on_renew_due: Callable[[dict[str, Any]], None] | None = None,
        connect_slots: asyncio.Semaphore | None = None,
        verbose: bool = False,
    ) -> None:
        self.state_dir = state_dir
        self.product_id = product_id
        self.firmware = firmware
        self.host = host
        self.port = port
        self.overrides = overrides
        self.backoff = backoff
        self.heartbeat_override = heartbeat_override
        self.certificate_not_after = certificate_not_after
        self.on_connected = on_connected
        self.on_disconnected = on_disconnected
        self.on_renew_due = on_renew_due
        self.connect_slots = connect_slots
        self.verbose = verbose
        # Set while a connection is past the hello exchange.
        self.connected = asyncio.Event()
        self.connections = 0
        self.configs_applied = 0
        self._retry_log = RepeatLimitedLog(logger, backoff.cap)
        self._context: ssl.SSLContext | None = None
        self._write_lock = asyncio.Lock()
        # The open connection's writer, while connected.
        self._writer: asyncio.StreamWriter | None = None
        # Set while a renew request waits for its reply.
        self._renewal_reply: asyncio.Future[dict[str, Any]] | None = None
        # Set by use_new_certificate: the next reconnect is at once, not after a backoff.
        self._reconnect_now = False

    async def run_forever(self) -> None:
        """Connect, serve, and reconnect after every disconnect until cancelled.

        Raises CertificateExpired when cert.pem expires, and CertificateRevoked
        when the server rejects it as revoked, because no server will accept it
        any more.
        """
        # A session that stays up this long (seconds) counts as healthy, so the
        # next reconnect starts again from the shortest backoff.
        healthy_after = min(self.backoff.cap, 60.0)
        while True:
            if self.certificate_not_after and datetime.now(UTC) >= self.certificate_not_after:
                raise CertificateExpired(f"certificate expired at {self.certificate_not_after:%Y-%m-%dT%H:%M:%SZ}")
            started = time.monotonic()
            try:
                await self._connect_and_serve()
                reason = "closed by the server"
            except ReconnectRequested as request:
                # A planned stop, not a failure: wait a random part of the window the gateway gave, so that
                # its ECs spread over the other gateways, and keep the backoff where it was.
                delay = random.uniform(0, request.within)  # noqa: S311 - jitter, not a secret
                logger.info("%s: gateway asked for a reconnect (%s); reconnecting in %.1f s", self.product_id,
                            request.reason, delay)
                self.connected.clear()
                if self.on_disconnected is not None:
                    self.on_disconnected(f"reconnect requested ({request.reason})")
                await asyncio.sleep(delay)
                continue
            except TunnelClosed as error:
                reason = str(error)
            except (OSError, ssl.SSLError, TimeoutError, ValueError) as error:
                reason = f"{type(error).__name__}: {error}"
            finally:
                self.connected.clear()

            if self._reconnect_now:
                self._reconnect_now = False
                logger.info("%s: reconnecting to %s:%s with the renewed certificate", self.product_id, self.host,
                            self.port)
                continue
            if self.on_disconnected is not None:
                self.on_disconnected(reason)
            if time.monotonic() - started >= healthy_after:
                self.backoff.reset()
            delay = self.backoff.next_delay()
            self._retry_log.log(
                logging.WARNING,
                reason,
                "%s: tunnel to %s:%s down (%s); reconnecting in %.1f s",
                self.product_id,
                self.host,
                self.port,
                reason,
                delay,
            )
            await asyncio.sleep(delay)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._context is None:
            self._context = build_ssl_context(self.state_dir)
        # Connect to the override address but verify the certificate against the
        # tunnel host name, as the Host header does for HTTP.
        address = self.overrides.lookup(self.host, self.port) or self.host
        return await asyncio.wait_for(
            asyncio.open_connection(
                address,
                self.port,
                ssl=self._context,
                server_hostname=self.host,
                limit=MAX_LINE_BYTES,
                ssl_handshake_timeout=CONNECT_TIMEOUT,
            ),
            timeout=CONNECT_TIMEOUT,
        )

    async def _connect_and_serve(self) -> None:
        async with self.connect_slots or contextlib.nullcontext():
            reader, writer = await self._open()
            try:
                hello = await self._exchange_hello(reader, writer)
            except BaseException:
                await self._close(writer)
                raise

        try:
            await self._serve(reader, writer, hello)
        finally:
            await self._close(writer)

    async def _exchange_hello(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> dict[str, Any]:
        await self._send(
            writer,
            {
                "type": "hello",
                "product_id": self.product_id,
                "firmware": self.firmware,
                "config_version": read_config_version(self.state_dir),
            },
        )
        reply = await self._receive(reader, timeout=HELLO_TIMEOUT)
        if reply.get("type") == "error" and reply.get("code") in CERTIFICATE_REJECTED_CODES:
            raise CertificateRevoked(self._describe_error(reply))
        if reply.get("type") == "error":
            raise TunnelClosed(self._describe_error(reply))
        if reply.get("type") != "hello":
            raise TunnelClosed(f"expected a hello reply, got type {reply.get('type')!r}")
        return reply

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hello: dict[str, Any]) -> None:
        interval = _heartbeat_interval(hello, self.heartbeat_override)
        self.connections += 1
        self._writer = writer
        self.connected.set()
        self._retry_log.clear()
        logger.info(
            "%s: tunnel up to %s:%s (tenant %s, heartbeat every %.1f s)",
            self.product_id,
            self.host,
            self.port,
            hello.get("tenant"),
            interval,
        )
        if self.on_connected is not None:
            self.on_connected(hello)

        heartbeat = asyncio.create_task(self._send_heartbeats(writer, interval))
        # A failed heartbeat write closes the connection, so the read below ends
        # at once instead of waiting for the idle timeout.
        heartbeat.add_done_callback(lambda task: writer.close() if not task.cancelled() and task.exception() else None)
        try:
            idle_timeout = interval * MISSED_HEARTBEATS + 5.0
            while True:
                message = await self._receive(reader, timeout=idle_timeout)
                await self._handle(writer, message)
        finally:
            self._writer = None
            if self._renewal_reply is not None and not self._renewal_reply.done():
                self._renewal_reply.set_exception(TunnelClosed("the tunnel closed before the renew reply"))
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError, ConnectionError):
                await heartbeat

    async def _send_heartbeats(self, writer: asyncio.StreamWriter, interval: float) -> None:
        sequence = 0
        while True:
            await asyncio.sleep(interval)
            sequence += 1
            await self._send(writer, {"type": "heartbeat", "seq": sequence})

    async def _handle(self, writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "heartbeat":
            logger.log(
                logging.INFO if self.verbose else logging.DEBUG,
                "%s: heartbeat %s echoed",
                self.product_id,
                message.get("seq"),
            )
        elif kind == "config":
            await self._apply_config(writer, message)
        elif kind in ("renewed", "error") and self._renewal_reply is not None and not self._renewal_reply.done():
            # While a renew request waits, the next error is its reply. The
            # server closes the connection after a fatal error.
            self._renewal_reply.set_result(message)
        elif kind == "renew_due":
            logger.info("%s: the server requests a renewal (reason %s, certificate valid until %s)",
                        self.product_id, message.get("reason"), message.get("not_after"))
            if self.on_renew_due is not None:
                self.on_renew_due(message)
        elif kind == "reconnect":
            raise ReconnectRequested(message)
        elif kind == "error":
            raise TunnelClosed(self._describe_error(message))
        else:
            # Unknown types are skipped so that a newer server can add messages.
            logger.debug("%s: ignored tunnel message of type %r", self.product_id, kind)

    async def _apply_config(self, writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
        version = message.get("version")
        body = message.get("body")
        if isinstance(version, bool) or not isinstance(version, int):
            logger.warning(
                "%s: ignored config message with invalid version %r (expected an integer)",
                self.product_id,
                version,
            )
            return
        if not isinstance(body, dict):
            logger.warning(
                "%s: config version %d has a body of type %s, expected an object",
                self.product_id,
                version,
                type(body).__name__,
            )
            await self._send(
                writer,
                {
                    "type": "ack",
                    "version": version,
                    "status": "failed",
                    "detail": "body is not a JSON object",
                },
            )
            return

        try:
            # Atomic, so a crash leaves the previous config.json and its version in place.
            write_json(
                self.state_dir / CONFIG_FILE,
                {
                    "version": version,
                    "body": body,
                    "received_at": datetime.now(UTC).isoformat(timespec="seconds"),
                },
            )
        except OSError as error:
            logger.warning("%s: could not store config version %d: %s", self.product_id, version, error)
            await self._send(
                writer,
                {"type": "ack", "version": version, "status": "failed", "detail": f"could not store it: {error}"},
            )
            return
        self.configs_applied += 1
        logger.info("%s: config version %d applied", self.product_id, version)
        await self._send(writer, {"type": "ack", "version": version, "status": "applied"})

    async def request_renewal(self, csr_pem: str, timeout: float) -> dict[str, Any]:
        """Send ``renew`` with ``csr_pem`` and return the server's reply, a ``renewed`` or an ``error`` message.

        Raises TunnelClosed when no connection is open, or when the connection
        ends or ``timeout`` seconds pass before the reply.
        """
        writer = self._writer
        if writer is None or not self.connected.is_set():
            raise TunnelClosed("no tunnel connection is open")
        if self._renewal_reply is not None:
            raise RuntimeError("a renew request is already waiting for its reply")
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._renewal_reply = reply
        try:
            await self._send(writer, {"type": "renew", "csr": csr_pem})
            return await asyncio.wait_for(reply, timeout=timeout)
        except TimeoutError:
            raise TunnelClosed(f"no reply to the renew request within {timeout:.0f} s") from None
        except (OSError, ConnectionError) as error:
            raise TunnelClosed(f"sending the renew request failed: {type(error).__name__}: {error}") from None
        finally:
            self._renewal_reply = None

    def use_new_certificate(self, not_after: datetime) -> None:
        """Close the open connection and reconnect at once with the key and certificates now in the state folder."""
        self.certificate_not_after = not_after
        self._context = None
        # Cleared now, so that waiters see the next connection, not this closing one.
        self.connected.clear()
        if self._writer is not None:
            self._reconnect_now = True
            self._writer.close()

    @staticmethod
    def _describe_error(message: dict[str, Any]) -> str:
        # Logged by run_forever as the reason of the disconnect.
        return f"server error {message.get('code')}: {message.get('detail')}"

    async def _send(self, writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
        line = _encode(message)
        async with self._write_lock:
            writer.write(line)
            await writer.drain()

    async def _receive(self, reader: asyncio.StreamReader, timeout: float) -> dict[str, Any]:
        """Read one message, raising TunnelClosed on EOF, silence, bad JSON or a long line."""
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=timeout)
        except TimeoutError:
            raise TunnelClosed(f"no message from the server for {timeout:.0f} s") from None
        except ValueError:
            # StreamReader raises ValueError when a line exceeds its limit.
            raise TunnelClosed(f"server sent a line longer than {MAX_LINE_BYTES} bytes") from None
        if not line:
            raise TunnelClosed("connection closed by the server")
        try:
            message = json.loads(line)
        except ValueError:
            raise TunnelClosed(f"server sent invalid JSON: {line[:80]!r}") from None
        if not isinstance(message, dict):
            raise TunnelClosed(f"server sent a non-object message: {line[:80]!r}")
        return message

    @staticmethod
    async def _close(writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError, ConnectionError):
            await asyncio.wait_for(writer.wait_closed(), timeout=2.0)
