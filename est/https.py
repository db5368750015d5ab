"""The HTTPS server for EST: uvicorn with TLS client certificates handed to Django.

``simplereenroll`` authenticates an EC by its TLS client certificate. uvicorn
0.55 checks the certificate during the handshake but does not put it into
the ASGI scope, so :class:`ClientCertificateH11Protocol` adds the ASGI TLS
extension (``scope["extensions"]["tls"]``) to every request of a TLS
connection. The server certificate comes from the deployment root CA, and
the root CA is the only trust anchor for client certificates. So an EC sends
its certificate together with its tenant's issuing CA, and the view checks
which tenant issued it.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from cryptography import x509
from django_tenants.utils import get_public_schema_name
from uvicorn.protocols.http.h11_impl import H11Protocol

from pki import crypto

logger = logging.getLogger(__name__)

# TLS version numbers of the ASGI TLS extension, by the names ssl.SSLObject.version() returns.
TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}

# Lifetime of the server certificate (days). A new one is issued at each start.
# NOTE: nothing renews it while the server runs, so restart the server within this time.
SERVER_CERT_DAYS = 30


def tls_extension(transport) -> dict | None:
    """Return the ASGI TLS extension for a connection, or None when the connection is not TLS."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    client_name = x509.load_der_x509_certificate(der).subject.rfc4514_string() if der else None
    return {
        "server_cert": None,
        # Python's ssl module gives the peer's own certificate only, not the chain it sent.
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": client_name,
        # With CERT_OPTIONAL a certificate that fails verification ends the handshake, so none gets here.
        "client_cert_error": None,
        "tls_version": TLS_VERSIONS.get(ssl_object.version()),
        "cipher_suite": None,
    }


class ClientCertificateH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus the ASGI TLS extension in the scope of each request.

    uvicorn makes one protocol object per connection, so the wrapped
    application carries the TLS details of this connection only.
    """

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        tls = tls_extension(transport)
        if tls is None:
            return
        application = self.app

        async def application_with_tls(scope, receive, send):
            scope["extensions"] = {**(scope.get("extensions") or {}), "tls": tls}
            await application(scope, receive, send)

        self.app = application_with_tls


def server_dns_names() -> list[str]:
    """Return the DNS names of the server certificate: localhost, ``*.localhost`` and every tenant domain.

    OpenSSL 3.0 does not match ``acme.localhost`` against ``*.localhost``, so
    each tenant domain is listed by name as well.
    """
    from tenants.models import Domain

    domains = Domain.objects.exclude(tenant__schema_name=get_public_schema_name()).values_list("domain", flat=True)
    names = {"localhost", "*.localhost"}
    for domain in domains:
        try:
            ipaddress.ip_address(domain)
        except ValueError:
            names.add(domain.lower())
    return ["localhost", *sorted(names - {"localhost"})]


@dataclass(frozen=True)
class ServerFiles:
    certificate: Path
    key: Path
    root_ca: Path


def write_server_files(folder: Path, *, dns_names: list[str], ip_addresses: list[str]) -> ServerFiles:
    """Issue a TLS server certificate from the root CA and write it, its key and the root CA into ``folder``.

    The ssl module loads keys from files only. The caller removes ``folder``
    once the TLS context has read them.
    """
    from pki.services import root_ca_material

    root_signer, root_certificate = root_ca_material()
    key, certificate = crypto.issue_server_certificate(
        root_signer, root_certificate, dns_names=dns_names, ip_addresses=ip_addresses, valid_days=SERVER_CERT_DAYS,
    )
    files = ServerFiles(folder / "server.pem", folder / "server.key", folder / "root-ca.pem")
    files.key.touch(mode=0o600)
    files.key.write_bytes(crypto.private_key_to_pem(key, None))
    files.certificate.write_text(crypto.cert_to_pem(certificate))
    files.root_ca.write_text(crypto.cert_to_pem(root_certificate))
    logger.info("Issued HTTPS server certificate %s for %d host names", crypto.serial_hex(certificate),
                len(dns_names))
    return files


def server_config(files: ServerFiles, *, bind: str, port: int, log_level: str) -> uvicorn.Config:
    """Return the uvicorn configuration of the EST HTTPS server."""
    return uvicorn.Config(
        app="config.asgi:application",
        host=bind,
        port=port,
        ssl_certfile=str(files.certificate),
        ssl_keyfile=str(files.key),
        ssl_ca_certs=str(files.root_ca),
        # Optional, because cacerts and simpleenroll are used before an EC has a certificate.
        ssl_cert_reqs=ssl.CERT_OPTIONAL,
        http=ClientCertificateH11Protocol,
        ws="none",
        lifespan="off",
        # Clients connect directly, because a TLS client certificate cannot
        # pass through a proxy. So X-Forwarded-* headers are not trusted here.
        proxy_headers=False,
        # uvicorn's loggers go through the project's logging settings.
        log_config=None,
        log_level=log_level,
    )
