"""The container health probes of the Dockerfile and docker-compose.yml, run as the containers run them."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from ops.probe import main as probe
from tests.settings import _free_port

PROBE = [sys.executable, "-m", "ops.probe"]


def _run(command: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


def test_file_probe_accepts_recent_file(tmp_path):
    (tmp_path / "celerybeat-schedule").write_text("x")

    assert probe(["file", str(tmp_path / "celerybeat-schedule"), "--max-age", "60"]) == 0


def test_file_probe_accepts_suffixed_dbm_file(tmp_path):
    (tmp_path / "celerybeat-schedule.db").write_text("x")

    assert probe(["file", str(tmp_path / "celerybeat-schedule"), "--max-age", "60"]) == 0


def test_file_probe_rejects_stale_file(tmp_path):
    schedule = tmp_path / "celerybeat-schedule"
    schedule.write_text("x")
    old = time.time() - 3600
    os.utime(schedule, (old, old))

    assert probe(["file", str(schedule), "--max-age", "60"]) == 1


def test_file_probe_rejects_missing_file(tmp_path):
    assert probe(["file", str(tmp_path / "celerybeat-schedule"), "--max-age", "60"]) == 1


def test_http_probe_rejects_non_http_url():
    assert probe(["http", "file:///etc/passwd"]) == 1


def test_tls_probe_fails_on_closed_port():
    assert probe(["--timeout", "2", "tls", "127.0.0.1", str(_free_port())]) == 1


@pytest.mark.e2e
def test_http_probe_passes_on_ready_web_server(live_stack):
    result = _run([*PROBE, "http", f"http://127.0.0.1:{live_stack.web_port}/readyz", "--host", "localhost"])

    assert result.returncode == 0, result.stderr


@pytest.mark.e2e
def test_http_probe_fails_on_tenant_host(live_stack):
    result = _run([*PROBE, "http", f"http://127.0.0.1:{live_stack.web_port}/readyz", "--host", "acme.localhost"])

    assert result.returncode == 1
    assert "404" in result.stderr


@pytest.mark.e2e
def test_tls_probe_passes_on_tunnel_gateway(live_stack):
    result = _run([*PROBE, "tls", "127.0.0.1", str(live_stack.tunnel_port)])

    assert result.returncode == 0, result.stderr


@pytest.mark.e2e
def test_tls_probe_passes_on_est_https_server(live_stack):
    result = _run([*PROBE, "tls", "127.0.0.1", str(live_stack.https_port)])

    assert result.returncode == 0, result.stderr


@pytest.mark.e2e
def test_inspect_ping_reaches_worker(processes):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = _run([sys.executable, "-m", "celery", "-A", "config", "inspect", "ping", "--destination",
                   processes.worker_name, "--timeout", "5"], env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "pong" in result.stdout
