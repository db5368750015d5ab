"""A Celery worker and a tunnel gateway configured as a deployment runs them, for the metrics and probe tests.

They run next to the session's live stack, on their own Celery queue, worker
name and tunnel port, with a metrics token, a metrics port each, and a
multiprocess folder for the worker's pool processes.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass

import pytest
from django.conf import settings

from tests.conftest import _database_url, _wait_for_port, _wait_for_text, start_process, stop_process
from tests.settings import _free_port

TOKEN = "live-metrics-token"


@dataclass
class MetricsProcesses:
    queue: str
    worker_name: str
    worker_metrics_port: int
    tunnel_port: int
    gateway_metrics_port: int


@pytest.fixture(scope="session")
def processes(world, django_db_blocker, tmp_path_factory) -> MetricsProcesses:
    """Start the worker and the gateway with their metrics ports; stop them at the end of the session."""
    logs = tmp_path_factory.mktemp("deploy-logs")
    multiprocess_dir = tmp_path_factory.mktemp("prometheus-multiproc")
    with django_db_blocker.unblock():
        database_url = _database_url()
    running = MetricsProcesses(queue=f"{settings.CELERY_TASK_DEFAULT_QUEUE}-deploy",
                               worker_name=f"deploy-{settings.CELERY_TASK_DEFAULT_QUEUE}@{socket.gethostname()}",
                               worker_metrics_port=_free_port(), tunnel_port=_free_port(),
                               gateway_metrics_port=_free_port())
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "PYTHONUNBUFFERED": "1", "ZTSP_METRICS_TOKEN": TOKEN}
    worker_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(multiprocess_dir),
                  "ZTSP_WORKER_METRICS_PORT": str(running.worker_metrics_port)}
    started = {
        "worker": start_process("deploy-worker", [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q",
                                                  running.queue, "-n", running.worker_name, "-c", "2", "-l", "info",
                                                  "--without-mingle", "--without-gossip"], worker_env, logs),
        "gateway": start_process("deploy-gateway", [sys.executable, "manage.py", "run_tunnel_gateway", "--port",
                                                    str(running.tunnel_port), "--metrics-port",
                                                    str(running.gateway_metrics_port)], env, logs),
    }
    try:
        _wait_for_text("ready.", started["worker"], logs / "deploy-worker.log")
        _wait_for_port(running.worker_metrics_port, started["worker"], logs / "deploy-worker.log")
        _wait_for_port(running.gateway_metrics_port, started["gateway"], logs / "deploy-gateway.log")
        yield running
    finally:
        for process in started.values():
            stop_process(process)
