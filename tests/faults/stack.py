"""A whole deployment on private servers, for tests that kill or restart its parts.

:class:`FaultStack` owns a private PostgreSQL and Redis (see
``tests.faults.servers``), seeds one tenant with mapped products, and starts
the web server, Celery workers and the tunnel gateway as child processes that
a test can stop, kill and start again. :class:`Fleet` runs simulated ECs on a
background event loop and records every HTTP status they receive.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from ec_client.agent import AgentOptions, AgentResult
from ec_client.fleet import run_fleet_async
from ec_client.state import write_device
from tests.conftest import PROJECT_DIR, _wait_for_port, _wait_for_text, start_process, stop_process
from tests.faults.servers import PrivatePostgres, PrivateRedis, short_folder

# Seconds a web request waits for a pooled database connection before it gets a 503. Short, so
# requests sent while PostgreSQL is down fail soon after it went down instead of 10 s later.
POOL_TIMEOUT_SECONDS = 2
# Seconds after which Redis hands an unacknowledged Celery message to another worker. Short, so a
# killed worker's message is delivered again within the test instead of after the production value.
VISIBILITY_TIMEOUT_SECONDS = 8
# Seconds between Celery beat's sweeps for approvals whose issuance task was lost.
ISSUANCE_SWEEP_SECONDS = 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Outage:
    """When a dependency was down, in time.monotonic() seconds; ``end`` is when it accepted connections again."""

    name: str
    start: float
    end: float | None = None


@dataclass
class FaultStack:
    folder: Path
    logs: Path
    postgres: PrivatePostgres
    redis: PrivateRedis
    web_port: int
    tunnel_port: int
    world: dict = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    outages: list[Outage] = field(default_factory=list)

    # ---------------------------------------------------------------- set-up

    @classmethod
    def create(cls, logs: Path, product_count: int) -> FaultStack:
        folder = short_folder("ztsp-faults-")
        stack = cls(folder, logs, PrivatePostgres(folder), PrivateRedis(folder), free_port(), free_port())
        try:
            stack.postgres.initialise()
            stack.postgres.start()
            stack.redis.start()
            seeded = subprocess.run([sys.executable, "-m", "tests.faults.world", "seed", str(product_count)],
                                    cwd=PROJECT_DIR, env=stack.env(), capture_output=True, text=True, timeout=120)
            if seeded.returncode != 0:
                raise RuntimeError(f"seeding the private database failed:\n{seeded.stderr[-3000:]}")
            stack.world = json.loads(seeded.stdout.strip().splitlines()[-1])
        except BaseException:
            # The fixture's teardown does not run when its set-up fails, or on Ctrl-C here.
            stack.close()
            raise
        return stack

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.postgres.url,
            "REDIS_URL": self.redis.url,
            "DJANGO_SETTINGS_MODULE": "tests.faults.settings",
            "PYTHONUNBUFFERED": "1",
            "ZTSP_DIRECTOR_PORT": str(self.web_port),
            "ZTSP_TUNNEL_PORT": str(self.tunnel_port),
            "DATABASE_POOL_TIMEOUT": str(POOL_TIMEOUT_SECONDS),
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_SECONDS),
            "ZTSP_ISSUANCE_SWEEP_SECONDS": str(ISSUANCE_SWEEP_SECONDS),
            "CELERY_BEAT_SCHEDULE_FILENAME": str(self.folder / "celerybeat-schedule"),
            **extra,
        }

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.redis.stop_quietly()
        self.postgres.stop_quietly()
        shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------ processes

    def start_web(self, name: str = "web", port: int | None = None) -> int:
        port = port or self.web_port
        command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port",
                   str(port), "--lifespan", "off", "--log-level", "warning"]
        self.processes[name] = start_process(name, command, self.env(), self.logs)
        _wait_for_port(port, self.processes[name], self.logs / f"{name}.log")
        return port

    def start_worker(self, name: str = "worker", signing_delay: float = 0) -> subprocess.Popen:
        """Start a prefork worker with one child; ``signing_delay`` is seconds of pause before each signature."""
        from django.conf import settings

        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", settings.CELERY_TASK_DEFAULT_QUEUE,
                   "-c", "1", "-l", "info", "--without-mingle", "--without-gossip", "-n", f"{name}@%h"]
        process = start_process(name, command, self.env(ZTSP_TEST_SIGNING_DELAY=str(signing_delay)), self.logs)
        self.processes[name] = process
        _wait_for_text("ready.", process, self.logs / f"{name}.log")
        return process

    def start_beat(self) -> None:
        command = [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "info"]
        self.processes["beat"] = start_process("beat", command, self.env(), self.logs)
        _wait_for_text("beat: Starting", self.processes["beat"], self.logs / "beat.log")

    def start_gateway(self) -> None:
        command = [sys.executable, "manage.py", "run_tunnel_gateway", "--port", str(self.tunnel_port)]
        self.processes["gateway"] = start_process("gateway", command, self.env(), self.logs)
        _wait_for_port(self.tunnel_port, self.processes["gateway"], self.logs / "gateway.log")

    def start_all(self, signing_delay: float = 0) -> None:
        self.start_web()
        self.start_gateway()
        self.start_worker(signing_delay=signing_delay)

    def stop(self, name: str) -> None:
        stop_process(self.processes.pop(name))

    def kill(self, name: str) -> None:
        """Kill a process and its children (a prefork worker's pool) with SIGKILL, as the OOM killer would."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def kill_pool_child(self, name: str) -> int:
        """Kill the pool child of a prefork worker with SIGKILL and return its pid; the worker itself lives on."""
        import psutil

        children = psutil.Process(self.processes[name].pid).children()
        assert len(children) == 1, f"expected one pool child of {name}, found {children}"
        children[0].send_signal(signal.SIGKILL)
        return children[0].pid

    def log_text(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    # -------------------------------------------------------------- outages

    def restart_postgres(self, down_seconds: float, during: Callable[[], object] | None = None) -> None:
        """Stop PostgreSQL (fast shutdown: sessions are ended), call ``during``, and start it after ``down_seconds``."""
        self._restart("postgres", lambda: self.postgres.stop("fast"), self.postgres.start, down_seconds, during)

    def restart_redis(self, down_seconds: float, during: Callable[[], object] | None = None) -> None:
        """Stop Redis (SIGTERM), call ``during``, and start it again after ``down_seconds``."""
        self._restart("redis", self.redis.stop, self.redis.start, down_seconds, during)

    def _restart(self, name, stop, start, down_seconds, during) -> None:
        outage = Outage(name, time.monotonic())
        self.outages.append(outage)
        stop()
        if during is not None:
            during()
        time.sleep(down_seconds)
        start()
        outage.end = time.monotonic()

    # ------------------------------------------------------------ the world

    @property
    def product_ids(self) -> list[str]:
        return self.world["product_ids"]

    def query(self, sql: str, *params) -> list[tuple]:
        """Run ``sql`` on the private database in the tenant's schema and return its rows."""
        with psycopg.connect(host=str(self.folder), user="postgres", dbname="ztsp", autocommit=True) as connection:
            connection.execute(f'SET search_path TO "{self.world["schema"]}", public')
            return connection.execute(sql, params).fetchall()

    def director_api(self, path: str, body: dict | None = None, port: int | None = None) -> dict:
        """Call the Director API of the seeded tenant as its admin (HTTP Basic) and return the JSON body."""
        credentials = f"{self.world['admin']}:{self.world['password']}".encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port or self.web_port}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method="POST" if body is not None else "GET",
            headers={"Host": f"{self.world['domain']}:{self.web_port}", "Content-Type": "application/json",
                     "Authorization": "Basic " + base64.b64encode(credentials).decode()},
        )
        with urllib.request.urlopen(request, timeout=20) as response:
            return json.loads(response.read())

    def wait_for_pending(self, product_ids: list[str], timeout: float = 60) -> None:
        """Wait until every one of ``product_ids`` has a pending onboard request."""
        deadline = time.monotonic() + timeout
        wanted = set(product_ids)
        while time.monotonic() < deadline:
            rows = self.query("SELECT product_id FROM onboarding_onboardrequest WHERE status = 'pending'")
            if wanted <= {row[0] for row in rows}:
                return
            time.sleep(0.2)
        raise AssertionError(f"{len(wanted)} ECs did not all request onboarding within {timeout} s")

    def approve_all_pending(self) -> int:
        """Approve every pending request in one transaction, as a tenant admin's bulk approval does."""
        approved = subprocess.run([sys.executable, "-m", "tests.faults.world", "approve-all"], cwd=PROJECT_DIR,
                                  env=self.env(), capture_output=True, text=True, timeout=60)
        if approved.returncode != 0:
            raise RuntimeError(f"approving failed:\n{approved.stderr[-3000:]}")
        return json.loads(approved.stdout.strip().splitlines()[-1])["approved"]

    def approve_each_pending(self) -> int:
        """Approve every pending request through the Director API, one call each."""
        pending = self.director_api("/api/v1/director/onboard-requests?status=pending")["results"]
        for item in pending:
            self.director_api(f"/api/v1/director/onboard-requests/{item['request_id']}/approve", {"tags": ["faults"]})
        return len(pending)

    def active_certificates(self) -> dict[str, int]:
        """Return the number of active (unrevoked) certificates of each Product ID that has any certificate."""
        rows = self.query("SELECT product_id, count(*) FROM pki_issuedcertificate WHERE revoked_at IS NULL "
                          "GROUP BY product_id")
        return dict(rows)

    def wait_for_issued(self, product_ids: list[str], timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        wanted = set(product_ids)
        while time.monotonic() < deadline:
            if wanted <= set(self.active_certificates()):
                return
            time.sleep(0.3)
        missing = wanted - set(self.active_certificates())
        raise AssertionError(f"{len(missing)} of {len(wanted)} ECs have no certificate after {timeout} s")


@dataclass
class HttpStatus:
    at: float
    product_id: str
    step: str
    status: int
    retry_after: float | None


class Fleet:
    """Simulated ECs of the stack's tenant, run on an event loop in a background thread.

    Every HTTP response an EC receives is recorded in ``statuses`` with its
    time, so a test can check which 5xx responses arrived and when.
    """

    def __init__(self, stack: FaultStack, product_ids: list[str], folder: Path, *, exit_when_connected: bool = True,
                 deadline_seconds: float = 150):
        self.stack = stack
        self.state_dirs = []
        for product_id in product_ids:
            state_dir = folder / product_id.replace(":", "_")
            if not (state_dir / "device.json").exists():
                write_device(state_dir, product_id, f"http://localhost:{stack.web_port}",
                             stack.world["provisioning_key"], {"model": "EC100", "firmware": "1.0.0"})
            self.state_dirs.append(state_dir)
        self.statuses: list[HttpStatus] = []
        self.options = AgentOptions(
            resolve=(f"*.localhost:{stack.web_port}:127.0.0.1", f"localhost:{stack.web_port}:127.0.0.1",
                     f"localhost:{stack.tunnel_port}:127.0.0.1"),
            backoff_max=2, wait_seconds=20, deadline_seconds=deadline_seconds,
            exit_when_connected=exit_when_connected, hold_seconds=1, heartbeat_interval=2,
            on_response=self._record,
        )
        self.results: list[AgentResult] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def _record(self, product_id: str, step: str, status: int, retry_after: float | None) -> None:
        self.statuses.append(HttpStatus(time.monotonic(), product_id, step, status, retry_after))

    def start(self) -> Fleet:
        started = threading.Event()

        async def main():
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            started.set()
            self.results = await run_fleet_async(self.state_dirs, self.options, stop=self._stop)

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), name="fleet", daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def stop(self) -> None:
        """Stop every agent now (an EC switched off); the state folders keep where each one was."""
        self._loop.call_soon_threadsafe(self._stop.set)
        self.join()

    def join(self, timeout: float = 180) -> list[AgentResult]:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the fleet did not finish within {timeout} s")
        return self.results

    def server_errors(self) -> list[HttpStatus]:
        return [status for status in self.statuses if status.status >= 500]


def fetch_json(url: str, *, host: str, token: str, body: dict | None = None, timeout: float = 30) -> tuple[int, dict]:
    """Send one JSON request and return (status, body), for error statuses too."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode() if body is not None else None, method="POST" if body else "GET",
        headers={"Host": host, "Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
