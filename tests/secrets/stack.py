"""The DEBUG stack's processes and what the whole flow on it made."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import PROJECT_DIR
from tests.secrets.http import HostClient
from tests.secrets.scanning import SecretRegistry


@dataclass
class SecretsStack:
    web_port: int
    tunnel_port: int
    https_port: int
    env: dict
    logs: Path
    task_log: Path
    processes: dict
    # Bearer token of the web server's /metrics.
    metrics_token: str = field(repr=False)

    def client(self, host: str = "localhost") -> HostClient:
        return HostClient(host, self.web_port)

    def run_command(self, name: str, arguments: list[str], *, env: dict | None = None, timeout: float = 120
                    ) -> subprocess.CompletedProcess:
        """Run ``manage.py`` with the stack's environment; its output is kept as the log ``<name>.log``."""
        log = self.logs / f"{name}.log"
        with open(log, "a") as handle:
            completed = subprocess.run([sys.executable, "manage.py", *arguments], cwd=PROJECT_DIR,
                                       env={**self.env, **(env or {})}, stdout=handle, stderr=subprocess.STDOUT,
                                       timeout=timeout, check=False)
        assert completed.returncode == 0, f"manage.py {arguments[0]} exited with {completed.returncode}; see {log}"
        return completed


@dataclass
class FlowRecord:
    """What the flow made: its secrets, where they went, and signed-in clients for the page checks."""

    stack: SecretsStack
    registry: SecretRegistry
    pytest_log: Path
    product_id: str
    schema_name: str
    domain: str
    registration_id: int
    msp_slug: str
    msp_token: str
    vendor_basic: HostClient
    tenant_admin_basic: HostClient
    admin_session: HostClient
    portal_session: HostClient
    director_session: HostClient
    tenant_job_id: str
    # Schema of the tenant that the background job created.
    background_schema_name: str
