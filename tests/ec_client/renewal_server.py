"""A FakeZtsp whose tunnel server also replies to ``renew`` and can push ``renew_due``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from .servers import TENANT, FakeZtsp, TunnelSession


class RenewingZtsp(FakeZtsp):
    """Tunnel server with renewal: each ``renew`` gets the next scripted error, or a certificate once none is left."""

    def __init__(self, pki) -> None:
        super().__init__(pki)
        # Sent once, right after the next hello reply.
        self.renew_due: dict[str, Any] | None = None
        self.renew_errors: list[dict[str, Any]] = []
        # The CSR of every renew message, in order.
        self.renew_csrs: list[str] = []
        self.renewed_serials: list[str] = []

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
            await self._send(writer, {"type": "hello", "heartbeat_interval": self.heartbeat_interval,
                                      "tenant": TENANT, "server_time": datetime.now(UTC).isoformat()})
            if self.renew_due is not None:
                renew_due, self.renew_due = self.renew_due, None
                await self._send(writer, {"type": "renew_due", **renew_due})

            while line := await reader.readline():
                message = json.loads(line)
                if message.get("type") == "heartbeat":
                    session.heartbeats.append(message["seq"])
                    await self._send(writer, message)
                elif message.get("type") == "renew":
                    await self._renew(writer, message["csr"])
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tunnel_writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _renew(self, writer: asyncio.StreamWriter, csr_pem: str) -> None:
        self.renew_csrs.append(csr_pem)
        if self.renew_errors:
            await self._send(writer, {"type": "error", **self.renew_errors.pop(0)})
            return
        certificate_pem = self.pki.issue_for_csr(csr_pem)
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
        serial_hex = format(certificate.serial_number, "x")
        self.renewed_serials.append(serial_hex)
        await self._send(writer, {
            "type": "renewed", "certificate": certificate_pem, "certificate_serial": serial_hex,
            "ca_chain": self.pki.chain_pem,
            "not_after": certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        })
