"""No process log of the whole flow contains a secret, in clear or in a common encoding.

The web server, worker, gateway and HTTPS server log at DEBUG; the commands
of the flow (import, CA and data key rotation) and the test process's own
log records (the EC agent, in-process services) are searched as well.
"""

from __future__ import annotations

import pytest

from tests.secrets.scanning import find_secrets_in_file

pytestmark = pytest.mark.e2e

LOGS = ["web", "worker", "gateway", "https", "import_products", "rotate_issuing_ca", "rotate_data_keys", "pytest"]


@pytest.mark.parametrize("name", LOGS)
def test_log_holds_no_secret(secret_flow, name):
    log = secret_flow.stack.logs / f"{name}.log"
    assert log.exists(), f"{log.name} was not written"
    assert log.stat().st_size > 0, f"{log.name} is empty, so the search would prove nothing"

    findings = find_secrets_in_file(log, secret_flow.registry.needles)

    assert not findings, "secrets found:\n" + "\n".join(findings)


def test_flow_registered_every_secret_kind(secret_flow):
    expected = {"DJANGO_SECRET_KEY", "ZTSP_HASH_KEY", "data key", "provisioning access key", "MSP API token",
                "tenant access key", "poll token", "vendor admin password", "MSP user password",
                "tenant admin password", "root CA private key", "issuing CA private key", "EC private key",
                "vendor admin session id", "MSP portal session id", "Director session id", "password reset token",
                "device secret", "device secret SHA-256", "device credential private key", "lookup proof token",
                "metrics token"}

    assert expected <= secret_flow.registry.kinds, sorted(expected - secret_flow.registry.kinds)
