"""A CA signer backend that pauses before each signature, as a remote HSM does, so a test can kill a worker
in the middle of a batch."""

from __future__ import annotations

import os
import time

from pki.signers import SoftwareBackend, SoftwareSigner


def signing_delay_seconds() -> float:
    return float(os.environ.get("ZTSP_TEST_SIGNING_DELAY", "0"))


class SlowSigner(SoftwareSigner):
    def sign(self, builder):
        time.sleep(signing_delay_seconds())
        return super().sign(builder)


class SlowSoftwareBackend(SoftwareBackend):
    """The software backend, reading the same stored keys, with ``ZTSP_TEST_SIGNING_DELAY`` seconds per signature."""

    def load(self, reference: str) -> SlowSigner:
        return SlowSigner(super().load(reference)._private_key)
