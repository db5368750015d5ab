"""Benchmark the whole zero-touch flow of N ECs, from boot to tunnel-up, through the real processes.

Run from the project root:

    python bench/ztp_fleet.py [--count N] [--concurrency C] [--deadline S]

In a database of its own it creates one MSP and one hosted Director tenant
and registers the tenant with the MSP. It imports N new Product IDs (default
10,000) with ``provisioning.services.importing.import_products``, and
allocates, claims and maps them to the tenant with ``msp.services.products``.
It then starts the real processes on 127.0.0.1, each on a free port: the web
server (uvicorn, one process), one Celery worker (prefork pool, one process)
and the tunnel gateway (``manage.py run_tunnel_gateway``). It writes one state folder
per EC with ``ec_client.state.write_device`` and runs ``ec-fleet`` on them in
a child process, with ``--hold 5`` so each EC leaves 5 s after its tunnel
comes up, and ``--deadline`` to bound the run.

Each EC looks up its Director on the Provision Server, generates its key,
sends its onboard request, long-polls until a tenant admin approves it and
the worker issues its certificate, then opens its management tunnel. While
the fleet runs, this process plays the tenant admin: every ``POLL_SECONDS``
it approves the pending onboard requests with
``onboarding.services_portal.approve_onboard_requests``, at most
``APPROVE_CHUNK`` per call, as a bulk approval in the portal does.

Figure: the seconds from the fleet's start until the last EC reached
tunnel-up, from the fleet's JSON report. It also prints the fleet's stage
table (how many ECs reached each phase, and when), the count of ECs per
final phase and "EC lost" (N minus the ECs that reached tunnel-up). Last
come the approvals and the CPU time of the web server, the worker and the
gateway.

Target: all N ECs reach tunnel-up within 600 s, and no EC is lost.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import benchlib
import tunnel_idle
from pki_issuance import group_cpu_seconds, release_redis, start_worker
from tunnel_idle import cpu_seconds

# Target: seconds from the fleet's start until every EC's tunnel is up.
TARGET_SECONDS = 600
TENANT_SCHEMA = "bench"
TENANT_DOMAIN = "bench.localhost"
MODEL = "EC100"
# Seconds between two rounds of approvals by the simulated tenant admin.
POLL_SECONDS = 0.5
# The maximum of onboard requests approved in one call, as the portal's bulk approval sends them.
APPROVE_CHUNK = 500
# Seconds each EC keeps its tunnel after it came up (ec-fleet --hold).
HOLD_SECONDS = 5
# Seconds the fleet may need beyond its --deadline to write its report and exit.
FLEET_EXIT_GRACE = 60
START_TIMEOUT = 60
# Seconds an EC waits before looking up again after a "409, retry later". The products are mapped before
# the fleet starts, so no lookup should get that response.
LOOKUP_RETRY_AFTER = 2


@dataclass
class ApproverRun:
    approved: int = 0
    calls: int = 0
    errors: list[str] = field(default_factory=list)
    # Seconds from the fleet's start until the gateway had recorded a tunnel connection of every EC. Each EC
    # leaves HOLD_SECONDS after its tunnel came up, so the ECs online at one time are fewer.
    all_connected_seconds: float | None = None
    connected: int = 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="ECs in the fleet (default 10,000)")
    parser.add_argument("--concurrency", type=int, default=100,
                        help="HTTP connections and tunnel handshakes in flight at a time in the fleet, passed to "
                             "ec-fleet --concurrency (default 100, the fleet's default)")
    parser.add_argument("--deadline", type=float, default=TARGET_SECONDS + 60,
                        help=f"seconds after which the fleet stops every EC, passed to ec-fleet --deadline "
                             f"(default {TARGET_SECONDS + 60})")
    args = parser.parse_args()
    if args.count < 1 or args.concurrency < 1 or args.deadline <= 0:
        parser.error("--count, --concurrency and --deadline must be positive")
    return args


def free_ports() -> tuple[int, int]:
    """Return two distinct free ports on 127.0.0.1, for the web server and the gateway."""
    web = tunnel_idle.free_port()
    gateway = tunnel_idle.free_port()
    while gateway == web:
        gateway = tunnel_idle.free_port()
    return web, gateway


def provision(count: int) -> tuple[list[str], str]:
    """Import ``count`` products and map them to one hosted tenant.

    Returns the Product IDs and a new provisioning access key for the ECs.
    """
    import io

    from audit.services import Actor
    from msp.services import accounts, products, registrations
    from provisioning.services.access_keys import create_access_key
    from provisioning.services.importing import import_products
    from tenants.services import create_hosted_tenant, management_url_for

    vendor = Actor.system("bench")
    msp = accounts.create_msp("Bench MSP", slug="bench-msp", actor=vendor)
    _tenant, tenant_key = create_hosted_tenant(name="Bench", schema_name=TENANT_SCHEMA, domain=TENANT_DOMAIN,
                                               actor=vendor, owner_msp=msp)
    registration = registrations.register_tenant(msp, name="Bench", management_url=management_url_for(TENANT_DOMAIN),
                                                 access_key=tenant_key, actor=vendor)

    product_ids = [f"{MODEL}:{uuid.uuid4()}" for _ in range(count)]
    report = import_products(io.BytesIO("\n".join(product_ids).encode()), actor=vendor, source_name="bench.csv")
    print(f"import: {report.summary()}", flush=True)
    products.allocate_products(msp, products.numbered(product_ids), actor=vendor)
    products.claim_products(msp, products.numbered(product_ids), actor=vendor)
    products.map_products_to_tenant(msp, registration, products.numbered(product_ids), actor=vendor)
    _key, provisioning_key = create_access_key("bench firmware", actor=vendor)
    return product_ids, provisioning_key


def write_state_folders(folder: Path, product_ids: list[str], web_port: int, provisioning_key: str) -> None:
    from ec_client.state import write_device

    for product_id in product_ids:
        write_device(folder / product_id.replace(":", "_"), product_id, f"http://localhost:{web_port}",
                     provisioning_key, {"model": MODEL, "firmware": "1.0.0"})


def start_web(port: int, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
               "--lifespan", "off", "--log-level", "warning"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=benchlib.PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the web server exited with {process.returncode}; log:\n{log_path.read_text()[-3000:]}")
        if _port_open(port):
            return process
        time.sleep(0.2)
    benchlib.stop_process_group(process)
    raise SystemExit(f"the web server did not listen within {START_TIMEOUT} s; log:\n{log_path.read_text()[-3000:]}")


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start_fleet(args, state_folder: Path, web_port: int, gateway_port: int, report_path: Path,
                log_path: Path) -> subprocess.Popen:
    command = [sys.executable, "-c", "from ec_client.cli import fleet_main; raise SystemExit(fleet_main())",
               str(state_folder),
               "--resolve", f"localhost:{web_port}:127.0.0.1",
               "--resolve", f"*.localhost:{web_port}:127.0.0.1",
               "--resolve", f"localhost:{gateway_port}:127.0.0.1",
               "--backoff-max", "5", "--wait", "20", "--json-report", str(report_path),
               "--deadline", str(args.deadline), "--hold", str(HOLD_SECONDS), "--concurrency", str(args.concurrency)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # The fleet's table has one line per EC, so its output goes to a log file, not the terminal.
    with open(log_path, "w") as log:
        return subprocess.Popen(command, cwd=benchlib.PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def approve_pending(run: ApproverRun) -> None:
    """Approve every pending onboard request of the tenant, the newest per EC, in calls of APPROVE_CHUNK."""
    from django_tenants.utils import schema_context

    from audit.services import Actor
    from onboarding.models import OnboardRequest
    from onboarding.services_portal import PortalError, approve_onboard_requests

    actor = Actor.system("bench-tenant-admin")
    with schema_context(TENANT_SCHEMA):
        pending = (OnboardRequest.objects.filter(status=OnboardRequest.Status.PENDING)
                   .order_by("-created_at").values_list("pk", "product_id"))
        # One call may not name two requests of the same EC, and the newest has the key the EC now uses.
        newest: dict[str, object] = {}
        for pk, product_id in pending:
            newest.setdefault(product_id, pk)
        request_ids = list(newest.values())
        for start in range(0, len(request_ids), APPROVE_CHUNK):
            chunk = request_ids[start:start + APPROVE_CHUNK]
            run.calls += 1
            try:
                run.approved += len(approve_onboard_requests(chunk, actor=actor))
            except PortalError as error:
                # The EC sent a newer request between the read and the lock, which superseded this one. The next
                # round approves the newer request.
                run.errors.append(f"{error.code}: {error.detail[:200]}")


def connected_count() -> int:
    """Return the ECs for which the gateway recorded a tunnel connection, whether still open or not."""
    from django_tenants.utils import schema_context

    from onboarding.models import EdgeController

    with schema_context(TENANT_SCHEMA):
        return EdgeController.objects.filter(tunnel_connected_at__isnull=False).count()


def approve_until_fleet_exits(args, fleet: subprocess.Popen, started: float) -> ApproverRun:
    """Approve pending requests until the fleet exits or its deadline and grace have passed."""
    run = ApproverRun()
    stop_at = started + args.deadline + FLEET_EXIT_GRACE
    last_report = started
    while fleet.poll() is None and time.monotonic() < stop_at:
        approve_pending(run)
        run.connected = connected_count()
        if run.all_connected_seconds is None and run.connected >= args.count:
            run.all_connected_seconds = time.monotonic() - started
        if time.monotonic() - last_report >= 15:
            last_report = time.monotonic()
            print(f"  {last_report - started:6.1f} s: {run.approved:,} approved, {run.connected:,} tunnels recorded",
                  flush=True)
        time.sleep(POLL_SECONDS)
    return run


def load_results(report_path: Path) -> list:
    from ec_client.agent import AgentResult

    return [AgentResult(**row) for row in json.loads(report_path.read_text())]


def main() -> None:
    args = parse_args()
    limit = tunnel_idle.raise_descriptor_limit(args.count + args.concurrency)
    benchlib.exit_on_sigterm()
    benchlib.print_header(f"bench/ztp_fleet.py: {args.count:,} ECs from boot to tunnel-up through the web server, "
                          "one Celery worker and one tunnel gateway")
    print(f"RLIMIT_NOFILE raised to the hard limit, {limit:,}", flush=True)

    # The servers read their ports from the settings, so the environment is set before Django starts.
    web_port, gateway_port = free_ports()
    os.environ["ZTSP_DIRECTOR_PORT"] = str(web_port)
    os.environ["ZTSP_TUNNEL_PORT"] = str(gateway_port)
    os.environ["ZTSP_TUNNEL_PUBLIC_PORT"] = str(gateway_port)
    os.environ["ZTSP_LOOKUP_RETRY_AFTER"] = str(LOOKUP_RETRY_AFTER)

    folder = Path(tempfile.mkdtemp(prefix="ztsp-bench-fleet-"))
    logs = {name: folder / f"{name}.log" for name in ("web", "worker", "gateway", "fleet")}
    report_path = folder / "fleet-report.json"
    figures: dict = {}
    with benchlib.BenchDatabase():
        from django.conf import settings
        from django.db import connections

        started = time.monotonic()
        product_ids, provisioning_key = provision(args.count)
        print(f"imported, allocated, claimed and mapped {len(product_ids):,} products to tenant {TENANT_SCHEMA} in "
              f"{time.monotonic() - started:.1f} s", flush=True)
        started = time.monotonic()
        state_folder = folder / "ecs"
        write_state_folders(state_folder, product_ids, web_port, provisioning_key)
        print(f"wrote {len(product_ids):,} state folders in {time.monotonic() - started:.1f} s", flush=True)
        connections.close_all()

        processes: dict[str, subprocess.Popen] = {}
        try:
            processes["web"] = start_web(web_port, logs["web"])
            processes["worker"] = start_worker("prefork", logs["worker"])
            processes["gateway"] = tunnel_idle.start_gateway(gateway_port, settings.ZTSP_HEARTBEAT_INTERVAL,
                                                             logs["gateway"])
            print(f"web server 127.0.0.1:{web_port}, gateway 127.0.0.1:{gateway_port}, one worker; logs in {folder}",
                  flush=True)
            cpu_before = {"web": cpu_seconds(processes["web"].pid),
                          "worker": group_cpu_seconds(processes["worker"].pid),
                          "gateway": cpu_seconds(processes["gateway"].pid)}

            started = time.monotonic()
            processes["fleet"] = start_fleet(args, state_folder, web_port, gateway_port, report_path, logs["fleet"])
            print(f"fleet started: {args.count:,} ECs, concurrency {args.concurrency}, deadline {args.deadline:.0f} s",
                  flush=True)
            figures["approver"] = approve_until_fleet_exits(args, processes["fleet"], started)
            figures["fleet_exit"] = processes["fleet"].poll()
            figures["fleet_seconds"] = time.monotonic() - started
            figures["cpu"] = {"web": cpu_seconds(processes["web"].pid) - cpu_before["web"],
                              "worker": group_cpu_seconds(processes["worker"].pid) - cpu_before["worker"],
                              "gateway": cpu_seconds(processes["gateway"].pid) - cpu_before["gateway"]}
        finally:
            # The fleet first, so that no EC is still talking to a server that stops.
            for name in ("fleet", "web", "worker", "gateway"):
                if name in processes:
                    benchlib.stop_process_group(processes[name])
            print("stopped the fleet, web server, worker and gateway", flush=True)
            release_redis(settings.CELERY_TASK_DEFAULT_QUEUE)
            connections.close_all()

    complete = print_results(args, figures, report_path, folder)
    if complete:
        shutil.rmtree(folder, ignore_errors=True)


def print_results(args, figures: dict, report_path: Path, folder: Path) -> bool:
    """Print the figures and return whether every EC reached tunnel-up within the target."""
    from ec_client.fleet import format_stage_table, stage_times

    count = args.count
    approver: ApproverRun = figures["approver"]
    print()
    print(f"results ({count:,} ECs, one web server process, one Celery worker process, one gateway process)")
    if not report_path.exists():
        print(f"  the fleet wrote no report (exit code {figures['fleet_exit']}); see {folder / 'fleet.log'}")
        print(f"  EC lost = {count:,} (no report)   {benchlib.verdict(False)}")
        return False

    results = load_results(report_path)
    up_times = stage_times(results)["tunnel_up"]
    tunnel_up = len(up_times)
    lost = count - tunnel_up
    last_up = up_times[-1] if up_times else None
    phases = Counter(result.phase for result in results)
    errors = Counter((result.error or "")[:120] for result in results if result.error)

    print(format_stage_table(results))
    print(f"  final phases:         {', '.join(f'{phase} {number:,}' for phase, number in sorted(phases.items()))}")
    print(f"  fleet run:            {figures['fleet_seconds']:.1f} s until the fleet exited with code "
          f"{figures['fleet_exit']} (each EC holds its tunnel {HOLD_SECONDS} s)")
    connected = (f"{approver.all_connected_seconds:.1f} s" if approver.all_connected_seconds is not None
                 else f"never ({approver.connected:,} at the end)")
    print(f"  gateway recorded a tunnel of every EC: {connected} (database polled every {POLL_SECONDS} s)")
    print(f"  approvals:            {approver.approved:,} requests in {approver.calls:,} calls, "
          f"{len(approver.errors)} calls rejected")
    for error in approver.errors[:3]:
        print(f"    rejected: {error}")
    cpu = figures["cpu"]
    print(f"  CPU during the run:   web {cpu['web']:.1f} s, worker {cpu['worker']:.1f} s, "
          f"gateway {cpu['gateway']:.1f} s")
    for error, number in errors.most_common(5):
        print(f"  error ({number:,} ECs): {error}")

    passed = tunnel_up == count and last_up is not None and last_up <= TARGET_SECONDS
    print()
    last_up_text = f"{last_up:.1f} s" if last_up is not None else "never"
    print(f"  last EC tunnel-up at {last_up_text} after the fleet's start; {tunnel_up:,} of {count:,} up; "
          f"EC lost = {lost:,}   (target: all within {TARGET_SECONDS} s, none lost)   {benchlib.verdict(passed)}")
    if tunnel_up != count:
        print(f"  not every EC reached tunnel-up; the logs and report are kept in {folder}")
    return tunnel_up == count


if __name__ == "__main__":
    main()
