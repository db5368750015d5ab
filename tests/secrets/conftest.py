"""A live stack that logs at DEBUG and records its Celery messages, and the whole flow run once on it.

The stack is separate from ``live_stack``: it listens on ports of its own so
that both can run in one session, and each process runs under
``tests.secrets.publish_spy``, which writes every task message it publishes
to ``tasks.jsonl``. Every secret the flow makes or uses is kept in a
:class:`~tests.secrets.scanning.SecretRegistry`.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import sys

import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import _database_url, _wait_for_port, _wait_for_text, start_process, stop_process
from tests.secrets.mailbox import MAILBOX_VARIABLE
from tests.secrets.stack import FlowRecord, SecretsStack

SPY = [sys.executable, "-m", "tests.secrets.publish_spy"]


def pytest_collection_modifyitems(items):
    """Run the log searches after the other tests of this folder, so they also cover the requests those make."""
    logs = [item for item in items if item.nodeid.startswith("tests/secrets/test_logs.py")]
    if not logs:
        return
    others = [item for item in items if item not in logs]
    last_secrets = max((index for index, item in enumerate(others) if item.nodeid.startswith("tests/secrets/")),
                       default=len(others) - 1)
    items[:] = others[:last_secrets + 1] + logs + others[last_secrets + 1:]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def secrets_stack(world, django_db_blocker, tmp_path_factory) -> SecretsStack:
    """Start uvicorn, a Celery worker, the tunnel gateway and the EST HTTPS server, all logging at DEBUG."""
    logs = tmp_path_factory.mktemp("secrets-logs")
    task_log = logs / "tasks.jsonl"
    task_log.touch()
    with django_db_blocker.unblock():
        database_url = _database_url()
    web_port, tunnel_port, https_port = _free_port(), _free_port(), _free_port()
    metrics_token = secrets.token_urlsafe(32)
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "PYTHONUNBUFFERED": "1", "ZTSP_LOG_LEVEL": "DEBUG", "ZTSP_DIRECTOR_PORT": str(web_port),
           "ZTSP_TUNNEL_PORT": str(tunnel_port), "ZTSP_TUNNEL_PUBLIC_PORT": str(tunnel_port),
           "ZTSP_HTTPS_PORT": str(https_port), "DJANGO_EMAIL_BACKEND": "tests.secrets.mailbox.MailboxBackend",
           MAILBOX_VARIABLE: str(logs / "mailbox.jsonl"), "ZTSP_METRICS_TOKEN": metrics_token}
    spy = [*SPY, str(task_log)]
    processes = {
        "web": start_process("web", [*spy, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                                     "--port", str(web_port), "--lifespan", "off", "--log-level", "debug"],
                             env, logs),
        "worker": start_process("worker", [*spy, "-m", "celery", "-A", "config", "worker", "-Q",
                                           settings.CELERY_TASK_DEFAULT_QUEUE, "-c", "2", "-l", "debug",
                                           "--without-mingle", "--without-gossip"], env, logs),
        "gateway": start_process("gateway", [*spy, "manage.py", "run_tunnel_gateway", "--port", str(tunnel_port)],
                                 env, logs),
        "https": start_process("https", [*spy, "manage.py", "run_https", "--port", str(https_port),
                                         "--log-level", "debug"], env, logs),
    }
    try:
        _wait_for_port(web_port, processes["web"], logs / "web.log")
        _wait_for_port(tunnel_port, processes["gateway"], logs / "gateway.log")
        _wait_for_port(https_port, processes["https"], logs / "https.log")
        _wait_for_text("ready.", processes["worker"], logs / "worker.log")
    except RuntimeError:
        for process in processes.values():
            stop_process(process)
        raise
    yield SecretsStack(web_port, tunnel_port, https_port, env, logs, task_log, processes, metrics_token)
    for process in processes.values():
        stop_process(process)


@pytest.fixture(scope="session")
def secret_flow(world, secrets_stack, django_db_blocker, tmp_path_factory) -> FlowRecord:
    """Run the whole flow once on the DEBUG stack, with the test process's own log records kept in a file."""
    from tests.secrets.flow import run_flow

    work_dir = tmp_path_factory.mktemp("secrets-flow")
    pytest_log = secrets_stack.logs / "pytest.log"
    handler = logging.FileHandler(pytest_log)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with django_db_blocker.unblock():
            record = run_flow(secrets_stack, world, work_dir, pytest_log)
            connection.set_schema_to_public()
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()
    return record
