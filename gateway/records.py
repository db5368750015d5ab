"""Database side of the tunnel gateway: who may connect, and online/offline bookkeeping.

Blocking functions; the gateway runs them in a thread pool. Each one sets the
tenant schema itself because pool threads are shared by all tenants.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from audit.services import Actor
from common.db import released_connection
from onboarding.models import EdgeController
from pki.models import IssuedCertificate
from tenants.models import Tenant

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TunnelPeer:
    schema_name: str
    product_id: str
    serial_hex: str
    edge_controller_id: int


@dataclass(frozen=True)
class RenewedCertificate:
    serial_hex: str
    certificate_pem: str
    ca_chain_pem: str
    not_after: datetime


class PeerRejected(Exception):
    def __init__(self, code: str, detail: str):
        self.code = code
        self.detail = detail
        super().__init__(detail)


@released_connection
def load_issuing_cas() -> dict[str, tuple[str, str]]:
    """Return {issuing CA key id: (tenant schema, CA certificate PEM)} for every trusted CA of every tenant.

    A CA retired by a rotation is listed until its overlap ends.
    """
    from pki.services import trusted_issuing_cas

    found: dict[str, tuple[str, str]] = {}
    connection.set_schema_to_public()
    for schema_name in Tenant.objects.exclude(schema_name="public").values_list("schema_name", flat=True):
        with schema_context(schema_name):
            for key_id, pem in trusted_issuing_cas().values_list("key_id", "certificate_pem"):
                found[key_id] = (schema_name, pem)
    return found


@released_connection
def authorize_peer(schema_name: str, serial_hex: str, product_id: str) -> TunnelPeer:
    """Check that the presented certificate is an active certificate of that tenant for that EC.

    The gateway calls this right after the TLS handshake, so a revoked certificate is refused with a
    reason the EC can read, instead of the bare alert of an OpenSSL CRL check in the handshake.
    """
    with schema_context(schema_name):
        certificate = IssuedCertificate.objects.select_related("issuing_ca").filter(serial_hex=serial_hex).first()
        if certificate is None:
            raise PeerRejected("unknown_certificate", f"Certificate {serial_hex} was not issued by this tenant.")
        if certificate.revoked_at is not None:
            raise PeerRejected("certificate_revoked", f"Certificate {serial_hex} is revoked; re-onboard the EC.")
        trusted_until = certificate.issuing_ca.trusted_until
        if trusted_until is not None and trusted_until <= timezone.now():
            raise PeerRejected("issuing_ca_retired",
                               f"Certificate {serial_hex} comes from an issuing CA that stopped being trusted "
                               f"at {trusted_until:%Y-%m-%d %H:%M}Z; re-onboard the EC.")
        if certificate.product_id != product_id:
            raise PeerRejected("product_mismatch", f"Certificate {serial_hex} belongs to another Product ID.")
        return TunnelPeer(schema_name, product_id, serial_hex, certificate.edge_controller_id)


@released_connection
def renew_peer_certificate(peer: TunnelPeer, csr_pem: str, *, source_address: str | None) -> RenewedCertificate:
    """Issue a new certificate for ``csr_pem`` to the EC authenticated as ``peer``; its old one is superseded.

    Raises pki.services.RenewalRefused, with nothing written, when the renewal is not allowed.
    """
    from pki.services import ca_chain_pem, renew_certificate

    with schema_context(peer.schema_name):
        tenant = Tenant.objects.get(schema_name=peer.schema_name)
        issued = renew_certificate(peer.serial_hex, csr_pem, tenant=tenant,
                                   source=IssuedCertificate.Source.TUNNEL_RENEWAL,
                                   actor=Actor.for_device(peer.product_id, source_address))
        chain = ca_chain_pem(issued.issuing_ca)
    return RenewedCertificate(issued.serial_hex, issued.certificate_pem, chain, issued.not_after)


@released_connection
def mark_online(peer: TunnelPeer, *, firmware: str, config_version: int, address: str | None = None) -> None:
    now = timezone.now()
    with schema_context(peer.schema_name):
        EdgeController.objects.filter(pk=peer.edge_controller_id).update(
            online=True, tunnel_connected_at=now, last_heartbeat_at=now, firmware=firmware[:64],
            applied_config_version=config_version, tunnel_address=address,
        )
    logger.info("Tunnel up: %s in %s from %s (certificate %s)", peer.product_id, peer.schema_name, address or "?",
                peer.serial_hex)


@released_connection
def record_heartbeats(schema_name: str, seen: dict[int, datetime]) -> None:
    """Write the last heartbeat time of many ECs of one tenant (batched by the gateway)."""
    with schema_context(schema_name):
        for controller_id, at in seen.items():
            EdgeController.objects.filter(pk=controller_id).update(last_heartbeat_at=at, online=True)


@released_connection
def mark_offline(peer: TunnelPeer) -> None:
    with schema_context(peer.schema_name):
        EdgeController.objects.filter(pk=peer.edge_controller_id).update(
            online=False, tunnel_disconnected_at=timezone.now()
        )
    logger.info("Tunnel down: %s in %s", peer.product_id, peer.schema_name)


@released_connection
def revoked_serials(schema_name: str, serials: list[str]) -> set[str]:
    """Return which of ``serials`` may no longer be used: revoked, gone, or from a CA whose overlap ended."""
    from pki.services import trusted_issuing_cas

    with schema_context(schema_name):
        active = set(
            IssuedCertificate.objects.filter(serial_hex__in=serials, revoked_at__isnull=True,
                                             issuing_ca__in=trusted_issuing_cas())
            .values_list("serial_hex", flat=True)
        )
    return set(serials) - active


@released_connection
def mark_all_offline() -> int:
    """Mark every EC offline; run at gateway start, when no tunnel can be open yet."""
    total = 0
    connection.set_schema_to_public()
    for schema_name in Tenant.objects.exclude(schema_name="public").values_list("schema_name", flat=True):
        with schema_context(schema_name):
            total += EdgeController.objects.filter(online=True).update(online=False)
    return total
