"""Run the whole system on this machine and drive simulated ECs through it.

Steps:

1. migrate, seed the demo accounts and import a factory CSV;
2. start the web server, a Celery worker and beat, the tunnel gateway and the EST
   HTTPS server;
3. boot the simulated fleet before its products are mapped, so the ECs get
   "409, retry later", then map the products;
4. approve the ECs as each tenant admin, and print a table once every EC's
   tunnel is up.

With ``--exit`` the command stops there, with status 0 only if every tunnel
came up. Otherwise everything keeps running until Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from config import embedded
from demo import seed

WEB_PORT = 8000
STARTUP_TIMEOUT = 60


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def _port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _wait_for_port(port: int, process: subprocess.Popen, name: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CommandError(f"The {name} exited with code {process.returncode} at start-up; see {log}.")
        if _port_in_use(port):
            return
        time.sleep(0.2)
    raise CommandError(f"The {name} did not listen on port {port} within {STARTUP_TIMEOUT} s; see {log}.")


def _create_database_if_missing() -> bool:
    """Create the configured database when the server has none of that name; return whether it did.

    A new user points DATABASE_URL at a fresh server; PostgreSQL does not
    create a database on first connection.
    """
    import psycopg
    from psycopg import sql

    db = settings.DATABASES["default"]
    params = {"host": db["HOST"] or None, "port": db["PORT"] or None, "user": db["USER"] or None,
              "password": db["PASSWORD"] or None}
    try:
        psycopg.connect(dbname=db["NAME"], **params).close()
        return False
    except psycopg.OperationalError as error:
        if "does not exist" not in str(error):
            raise CommandError(f"Cannot connect to PostgreSQL database {db['NAME']!r}: {error}") from error
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
    return True


class Command(BaseCommand):
    help = "Set up and run the Provision Server, Director, worker, tunnel gateway and a simulated EC fleet."

    def add_arguments(self, parser):
        parser.add_argument("--ecs", type=int, default=24, help="Number of simulated ECs (default: 24)")
        parser.add_argument("--exit", action="store_true",
                            help="Exit after the fleet is up: code 0 only if every EC reached tunnel-up")
        parser.add_argument("--timeout", type=float, default=180,
                            help="Seconds the fleet may take to come up (default: 180)")

    def handle(self, *args, ecs, exit, timeout, **options):
        if options["verbosity"] < 2:
            # The launcher's own output is the story; service logs go to the log files.
            logging.getLogger().setLevel(logging.WARNING)
        if ecs < 1:
            raise CommandError("--ecs must be at least 1.")
        for port, name in ((WEB_PORT, "web server"), (settings.ZTSP_TUNNEL_PORT, "tunnel gateway"),
                           (settings.ZTSP_HTTPS_PORT, "EST HTTPS server")):
            if _port_in_use(port):
                raise CommandError(f"Port {port} for the {name} is already in use on 127.0.0.1; stop the "
                                   "program that holds it (an earlier run?) and retry.")
        self.processes: dict[str, subprocess.Popen] = {}
        # The servers run in their own sessions, so a SIGTERM to this process
        # group would not reach them: turn it into the same clean stop as Ctrl-C.
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        self.logs = seed.demo_dir() / "logs"
        self.logs.mkdir(exist_ok=True)
        try:
            ok = self._run(ecs, exit, timeout)
        except KeyboardInterrupt:
            self._say("Stopping.")
            ok = False
        finally:
            self._stop_all()
        if exit and not ok:
            raise CommandError("Not every EC reached tunnel-up; see the table above and the logs in "
                               f"{self.logs}.")

    def _say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def _start(self, name: str, command: list[str]) -> subprocess.Popen:
        log = self.logs / f"{name}.log"
        # A short Retry-After keeps the demo brisk; a real deployment keeps its own value.
        env = {"ZTSP_LOOKUP_RETRY_AFTER": "2", **os.environ, "PYTHONUNBUFFERED": "1"}
        handle = open(log, "w")
        process = subprocess.Popen(command, cwd=embedded.PROJECT_DIR, env=env, stdout=handle,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[name] = process
        return process

    def _stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    def _run(self, ecs: int, exit_after: bool, timeout: float) -> bool:
        if _create_database_if_missing():
            self._say(f"Created database {settings.DATABASES['default']['NAME']}.")
        self._say("Migrating the database...")
        call_command("migrate_schemas", interactive=False, verbosity=0)
        call_command("bootstrap_deployment", verbosity=0)
        accounts = seed.ensure_demo_accounts()

        batch = seed.import_and_claim(ecs)
        self._say(f"Imported factory CSV {batch.csv_path}:\n{seed.read_csv_report(batch)}")

        python = sys.executable
        # By default uvicorn takes the client address from the X-Forwarded-For of any loopback client.
        # Turned off, ZTSP_TRUSTED_PROXY_COUNT alone decides whether that header is trusted.
        web = self._start("web", [python, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                                  "--port", str(WEB_PORT), "--lifespan", "off", "--no-proxy-headers",
                                  "--log-level", "warning"])
        self._start("worker", [python, "-m", "celery", "-A", "config", "worker", "-c", "2", "-l", "info",
                               "-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "--without-mingle", "--without-gossip"])
        # Beat sends the scheduled CRL refresh and certificate renewal reminders.
        self._start("beat", [python, "-m", "celery", "-A", "config", "beat", "-l", "info"])
        gateway = self._start("gateway", [python, "manage.py", "run_tunnel_gateway", "--reset-online"])
        https = self._start("https", [python, "manage.py", "run_https"])
        _wait_for_port(WEB_PORT, web, "web server", self.logs / "web.log")
        _wait_for_port(settings.ZTSP_TUNNEL_PORT, gateway, "tunnel gateway", self.logs / "gateway.log")
        _wait_for_port(settings.ZTSP_HTTPS_PORT, https, "EST HTTPS server", self.logs / "https.log")
        self._say(f"Web server on http://127.0.0.1:{WEB_PORT}, tunnel gateway on 127.0.0.1:"
                  f"{settings.ZTSP_TUNNEL_PORT}, EST HTTPS server on 127.0.0.1:{settings.ZTSP_HTTPS_PORT}, "
                  f"Celery worker and beat started. Logs in {self.logs}.")

        fleet_dir = seed.demo_dir() / "ecs"
        shutil.rmtree(fleet_dir, ignore_errors=True)
        from ec_client.state import write_device

        for product_id in batch.product_ids:
            model = product_id.split(":")[0]
            write_device(fleet_dir / product_id.replace(":", "_"), product_id, f"http://localhost:{WEB_PORT}",
                         accounts.provisioning_key, {"model": model, "firmware": "1.0.0"},
                         credential=batch.credentials[product_id])
        report = seed.demo_dir() / "fleet-report.json"
        fleet_command = [python, "-c", "from ec_client.cli import fleet_main; raise SystemExit(fleet_main())",
                         str(fleet_dir),
                         "--resolve", f"*.localhost:{WEB_PORT}:127.0.0.1",
                         "--resolve", f"localhost:{settings.ZTSP_TUNNEL_PORT}:127.0.0.1",
                         "--backoff-max", "5", "--wait", "20", "--json-report", str(report),
                         "--plot", str(seed.demo_dir() / "fleet-stages.png")]
        if exit_after:
            fleet_command += ["--deadline", str(timeout), "--hold", "5"]
        fleet = self._start("fleet", fleet_command)
        self._say(f"Booted {ecs} simulated ECs; their products are not mapped yet, so lookups get 409.")

        time.sleep(3)
        seed.map_batch(batch)
        self._say("MSPs mapped the products to their tenants; ECs now find their Directors.")

        all_up = self._approve_until_up(batch, fleet, timeout)
        self._print_table(batch)
        self._print_access(accounts)
        if exit_after:
            try:
                fleet_code = fleet.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                fleet_code = None
            self._say(f"Fleet exited with code {fleet_code}.")
            return all_up and fleet_code == 0
        self._say("Serving until Ctrl-C.")
        try:
            while all(process.poll() is None for name, process in self.processes.items() if name != "fleet"):
                time.sleep(1)
            self._say("A server process exited; stopping. See the logs above.")
        except KeyboardInterrupt:
            self._say("Stopping.")
        return all_up

    def _approve_until_up(self, batch, fleet: subprocess.Popen, timeout: float) -> bool:
        wanted = set(batch.product_ids)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            approved = seed.approve_pending(wanted)
            if approved:
                self._say(f"Tenant admins approved {approved} {'EC' if approved == 1 else 'ECs'}.")
            rows = seed.fleet_rows(batch)
            if all(row.online for row in rows):
                return True
            if fleet.poll() is not None and fleet.returncode != 0:
                self._say(f"The fleet exited with code {fleet.returncode}; see {self.logs / 'fleet.log'}.")
                return False
            time.sleep(0.5)
        return False

    def _print_table(self, batch) -> None:
        rows = seed.fleet_rows(batch)
        width = max(len(row.product_id) for row in rows)
        self._say("")
        self._say(f"{'Product ID':<{width}}  {'tenant':<8}  {'state':<10}  {'tunnel':<7}  certificate serial")
        for row in rows:
            tunnel = "up" if row.online else "down"
            self._say(f"{row.product_id:<{width}}  {row.tenant:<8}  {row.state:<10}  {tunnel:<7}  "
                      f"{row.certificate_serial}")
        up = sum(row.online for row in rows)
        self._say(f"{up} of {len(rows)} ECs have their management tunnel up.")
        proven = seed.count_proven_requests(batch)
        self._say(f"{proven} of {len(rows)} ECs proved their device credential at lookup.")

    def _print_access(self, accounts) -> None:
        port = WEB_PORT
        lines = [
            "",
            f"Vendor admin:     http://localhost:{port}/admin/   user 'vendor', password "
            f"'{accounts.passwords['vendor']}'",
            f"API docs:         http://localhost:{port}/api/docs/",
            f"EST over HTTPS:   https://<tenant>.localhost:{settings.ZTSP_HTTPS_PORT}/.well-known/est/ "
            "(trust the root CA, the last certificate of /api/v1/pki/ca)",
        ]
        for schema, _msp, _tags in seed.DEMO_TENANTS:
            label = f"Tenant {schema}:"
            lines.append(f"{label:<18}http://{schema}.localhost:{port}/   user 'admin', password "
                         f"'{accounts.passwords[f'tenant:{schema}']}'")
        for slug, token in accounts.msp_tokens.items():
            lines.append(f"MSP {slug} user '{slug}-admin' (password '{accounts.passwords[f'msp:{slug}']}'), "
                         f"API token for this run: {token}")
        lines.append(f"Provisioning access key of this run: {accounts.provisioning_key}")
        lines.append("Development credentials only; they live in .data/demo/credentials.json.")
        self._say("\n".join(lines))
