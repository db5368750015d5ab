"""Where CA private keys live and how they sign: the pluggable signer interface.

A CA row (the deployment root CA, a tenant issuing CA) stores a ``key_backend``
name and a key reference. The backend turns the reference into a
:class:`CASigner`. The software backend shipped here keeps the PEM key
encrypted with ``ZTSP_DATA_KEYS`` in the reference itself. A PKCS#11 HSM or a
cloud KMS backend would keep a key label or key ARN there instead and sign
remotely. Certificate and CRL profiles are built by :mod:`pki.crypto`, which
hands the finished builder to the signer, so a new backend changes nothing
about what is issued.

Backends are named in ``ZTSP_SIGNER_BACKENDS`` ({name: dotted class path});
``ZTSP_CA_KEY_BACKEND`` picks the one that new CA keys are made in.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from django.conf import settings
from django.utils.module_loading import import_string

from common import tokens
from pki import crypto


class CASigner(ABC):
    """One CA key that can sign certificates and CRLs; the private key never leaves it."""

    @abstractmethod
    def public_key(self) -> CertificatePublicKeyTypes: ...

    @abstractmethod
    def sign(self, builder: x509.CertificateBuilder | x509.CertificateRevocationListBuilder):
        """Sign a finished builder and return the certificate or CRL."""


class SignerBackend(ABC):
    """Makes CA keys and loads signers for them from a stored key reference."""

    name: str

    @abstractmethod
    def generate(self, kind: str) -> tuple[str, CASigner]:
        """Make a new CA key of ``kind`` (see :func:`pki.crypto.generate_private_key`).

        Returns the reference to store on the CA row and a signer for the key.
        """

    @abstractmethod
    def load(self, reference: str) -> CASigner: ...

    def rewrap(self, reference: str) -> str:
        """Return ``reference`` protected with the current data key; backends without wrapping return it as is."""
        return reference


class SoftwareSigner(CASigner):
    def __init__(self, private_key: crypto.PrivateKey):
        self._private_key = private_key

    def public_key(self) -> CertificatePublicKeyTypes:
        return self._private_key.public_key()

    def sign(self, builder):
        return crypto.sign_builder(builder, self._private_key)

    def __repr__(self) -> str:
        # Never show key material, even in a debugger or a traceback.
        return f"SoftwareSigner({type(self._private_key).__name__})"


class SoftwareBackend(SignerBackend):
    """Keys generated here, stored as PEM encrypted with Fernet under ``ZTSP_DATA_KEYS``."""

    name = "software"

    def generate(self, kind: str) -> tuple[str, CASigner]:
        key = crypto.generate_private_key(kind)
        return tokens.encrypt(crypto.private_key_to_pem(key, None)), SoftwareSigner(key)

    def load(self, reference: str) -> CASigner:
        return SoftwareSigner(crypto.load_private_key(tokens.decrypt(reference), None))

    def rewrap(self, reference: str) -> str:
        return tokens.rotate(reference)


_backends: dict[str, SignerBackend] = {}
_backends_lock = threading.Lock()


def backend(name: str | None = None) -> SignerBackend:
    """Return the signer backend called ``name`` (default: the one new CA keys go to)."""
    name = name or settings.ZTSP_CA_KEY_BACKEND
    found = _backends.get(name)
    if found is None:
        paths = settings.ZTSP_SIGNER_BACKENDS
        if name not in paths:
            raise LookupError(
                f"CA key backend {name!r} is not configured; add it to ZTSP_SIGNER_BACKENDS "
                f"(configured: {', '.join(sorted(paths))})."
            )
        with _backends_lock:
            found = _backends.setdefault(name, import_string(paths[name])())
    return found
