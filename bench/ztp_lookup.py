"""Benchmark the ZTP lookup (POST /api/v1/ztp/lookup) under concurrent load, against a minimal endpoint.

Run from the project root:

    python bench/ztp_lookup.py [--products N] [--clients N] [--seconds S] [--workers W] [--conn-max-age S]

In a database of its own it creates a provisioning access key, an MSP and a
tenant registration, and imports, allocates, claims and maps N products
(default 10,000) through the project's services. It then starts uvicorn
on 127.0.0.1 and a free port with W workers (default 2). uvicorn serves
``bench/lookup_app.py``, which is the project's ASGI application plus the
baseline ``POST /bench/lookup``. The baseline runs the same product query
and returns the same JSON, without the middleware, key check, throttles and
history writes.

Each endpoint gets C concurrent aiohttp clients (default 200) for S seconds
(default 20) after a short warm-up. Each request names a random mapped
product. The throttle rates are raised through ZTSP_THROTTLE_* so that no
request gets 429. ``--conn-max-age`` sets DATABASE_CONN_MAX_AGE for the
server processes, which otherwise use the project's setting. Target: the
lookup's throughput (200 responses a second) is at least 0.5x the
baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import benchlib

MIN_THROUGHPUT_RATIO = 0.5
LOOKUP_PATH = "/api/v1/ztp/lookup"
BASELINE_PATH = "/bench/lookup"
# Seconds to wait for uvicorn to listen.
START_TIMEOUT = 60
# Seconds one request may take before it counts as an error.
REQUEST_TIMEOUT = 30
FACTS = {"firmware": "1.0.0"}


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    client_cpu_seconds: float = 0.0
    machine_busy: float = 0.0
    database_connections: str | None = None

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=10_000, help="mapped products to seed (default 10,000)")
    parser.add_argument("--clients", type=int, default=200, help="concurrent HTTP clients (default 200)")
    parser.add_argument("--seconds", type=float, default=20, help="measured seconds per endpoint (default 20)")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds before each phase (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (default 2)")
    parser.add_argument("--throttle-rate", default="1000000/s",
                        help="rate for ZTSP_THROTTLE_ACCESS_KEY, _PRODUCT and _CLIENT (default 1000000/s)")
    parser.add_argument("--conn-max-age", type=int, metavar="SECONDS",
                        help="DATABASE_CONN_MAX_AGE for the server processes (default: the project's setting)")
    args = parser.parse_args()
    for name in ("products", "clients", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.seconds <= 0 or args.warmup < 0:
        parser.error("--seconds must be positive and --warmup not negative")
    return args


def seed(count: int) -> tuple[str, list[str]]:
    """Create an access key, an MSP, a tenant registration and ``count`` mapped products; return the key and ids."""
    from audit.services import Actor
    from msp.services.accounts import create_msp
    from msp.services.products import claim_products, map_products_to_tenant, numbered
    from msp.services.registrations import register_tenant
    from provisioning.models import Product
    from provisioning.services.access_keys import create_access_key
    from provisioning.services.importing import import_products

    actor = Actor.system("bench")
    _row, access_key = create_access_key("bench", actor=actor)
    msp = create_msp("Bench MSP", slug="bench", actor=actor)
    # The Director URL is only stored and returned, and nothing connects to it.
    registration = register_tenant(msp, name="Bench tenant", management_url="http://bench.localhost:8000",
                                   access_key=secrets.token_urlsafe(32), actor=actor)

    product_ids = [f"EC100:{uuid.uuid4()}" for _ in range(count)]
    csv_bytes = ("product_id\n" + "\n".join(product_ids) + "\n").encode()
    report = import_products(io.BytesIO(csv_bytes), actor=actor, allocate_to=msp, source_name="bench.csv")
    claim_products(msp, numbered(product_ids), actor=actor)
    map_products_to_tenant(msp, registration, numbered(product_ids), actor=actor)
    mapped = Product.objects.filter(tenant_registration=registration).count()
    if report.inserted != count or mapped != count:
        raise SystemExit(f"seeding failed: {report.inserted} imported and {mapped} mapped of {count} products")
    return access_key, product_ids


def count_lookup_queries(access_key: str, product_id: str) -> tuple[int, int]:
    """Return the SQL statements of a product's first lookup and of a repeated one, through Django's test Client."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="localhost")
    body = json.dumps({"product_id": product_id, "facts": FACTS})
    counts = []
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            response = client.post(LOOKUP_PATH, data=body, content_type="application/json",
                                   HTTP_AUTHORIZATION=f"Bearer {access_key}")
        if response.status_code != 200:
            raise SystemExit(f"POST {LOOKUP_PATH} through the test Client returned {response.status_code}: "
                             f"{response.content[:500]!r}")
        counts.append(len(queries))
    return counts[0], counts[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int, workers: int, throttle_rate: str, conn_max_age: int | None,
                 log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(benchlib.PROJECT_DIR), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
        "ZTSP_THROTTLE_ACCESS_KEY": throttle_rate,
        "ZTSP_THROTTLE_PRODUCT": throttle_rate,
        "ZTSP_THROTTLE_CLIENT": throttle_rate,
    }
    if conn_max_age is not None:
        env["DATABASE_CONN_MAX_AGE"] = str(conn_max_age)
    command = [sys.executable, "-m", "uvicorn", "lookup_app:application", "--app-dir", str(benchlib.BENCH_DIR),
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--lifespan", "off",
               "--log-level", "warning", "--no-access-log"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=benchlib.PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"uvicorn exited with {process.returncode}; log:\n{log_path.read_text()[-3000:]}")
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.1)
    benchlib.stop_process_group(process)
    raise SystemExit(f"uvicorn did not listen on 127.0.0.1:{port} within {START_TIMEOUT} s; "
                     f"log:\n{log_path.read_text()[-3000:]}")


def _machine_ticks() -> tuple[int, int]:
    """Return (busy, total) CPU ticks of the whole machine from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def count_database_connections(bench: benchlib.BenchDatabase) -> str:
    """Return the number of other sessions on the bench database, or why it could not be counted."""
    import psycopg

    try:
        with psycopg.connect(bench.libpq_url(), connect_timeout=5) as connection:
            count = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()[0]
            limit = connection.execute("SHOW max_connections").fetchone()[0]
    except psycopg.OperationalError as error:
        return f"not counted ({str(error).strip().splitlines()[-1]})"
    return f"{count} (max_connections {limit})"


async def drive(url: str, bodies: list[bytes], headers: dict, *, clients: int, seconds: float, name: str,
                bench: benchlib.BenchDatabase | None = None) -> Phase:
    """Send requests from ``clients`` concurrent clients for ``seconds``; return what they measured."""
    import aiohttp

    phase = Phase(name)
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=clients, limit_per_host=clients)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        deadline = loop.time() + seconds

        async def client() -> None:
            while loop.time() < deadline:
                body = random.choice(bodies)  # noqa: S311 - picks a product to ask for, not a secret
                started = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError) as error:
                    phase.errors[type(error).__name__] += 1
                    continue
                phase.latencies.append(time.perf_counter() - started)
                phase.statuses[status] += 1

        async def sample_connections() -> None:
            await asyncio.sleep(seconds / 2)
            phase.database_connections = await asyncio.to_thread(count_database_connections, bench)

        busy_before, total_before = _machine_ticks()
        cpu_before = time.process_time()
        started = time.perf_counter()
        tasks = [client() for _ in range(clients)]
        if bench is not None:
            tasks.append(sample_connections())
        await asyncio.gather(*tasks)
        phase.seconds = time.perf_counter() - started
        phase.client_cpu_seconds = time.process_time() - cpu_before
        busy_after, total_after = _machine_ticks()
        phase.machine_busy = (busy_after - busy_before) / max(1, total_after - total_before)
    return phase


async def check_same_answer(base_url: str, body: bytes, headers: dict) -> None:
    """Ask both endpoints for one product and stop unless both return 200 and the same JSON."""
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as session:
        answers = {}
        for path in (LOOKUP_PATH, BASELINE_PATH):
            async with session.post(base_url + path, data=body, headers=headers) as response:
                answers[path] = (response.status, await response.text())
    for path, (status, text) in answers.items():
        if status != 200:
            raise SystemExit(f"POST {path} returned {status}, expected 200: {text[:500]}")
    if json.loads(answers[LOOKUP_PATH][1]) != json.loads(answers[BASELINE_PATH][1]):
        raise SystemExit(f"the baseline returns other JSON than the lookup: {answers}")
    print("check: both endpoints return 200 and the same JSON for a mapped product", flush=True)


async def run_phases(args, base_url: str, access_key: str, product_ids: list[str],
                     bench: benchlib.BenchDatabase) -> dict[str, Phase]:
    headers = {"Authorization": f"Bearer {access_key}", "Content-Type": "application/json"}
    bodies = [json.dumps({"product_id": product_id, "facts": FACTS}).encode() for product_id in product_ids]
    await check_same_answer(base_url, bodies[0], headers)
    phases = {}
    for name, path in (("baseline", BASELINE_PATH), ("lookup", LOOKUP_PATH)):
        if args.warmup:
            await drive(base_url + path, bodies, headers, clients=args.clients, seconds=args.warmup, name=name)
        phase = await drive(base_url + path, bodies, headers, clients=args.clients, seconds=args.seconds,
                            name=name, bench=bench)
        print(f"{name}: {sum(phase.statuses.values()):,} responses in {phase.seconds:.1f} s", flush=True)
        phases[name] = phase
    return phases


def main() -> None:
    args = parse_args()
    benchlib.exit_on_sigterm()
    benchlib.print_header(f"bench/ztp_lookup.py: {args.clients} clients for {args.seconds:g} s, "
                          f"{args.products:,} mapped products, uvicorn with {args.workers} workers")
    logs = Path(tempfile.mkdtemp(prefix="ztsp-bench-lookup-"))
    log_path = logs / "uvicorn.log"
    with benchlib.BenchDatabase() as bench:
        started = time.monotonic()
        access_key, product_ids = seed(args.products)
        print(f"seeded {len(product_ids):,} mapped products in {time.monotonic() - started:.1f} s", flush=True)
        # The last product serves the query count, so the load below requests only products not looked up yet.
        first_queries, repeat_queries = count_lookup_queries(access_key, product_ids.pop())
        print(f"SQL statements per lookup (Django test Client): {first_queries} for a product's first lookup, "
              f"{repeat_queries} for a repeated one", flush=True)
        from django.db import connections

        connections.close_all()

        port = free_port()
        server = start_server(port, args.workers, args.throttle_rate, args.conn_max_age, log_path)
        print(f"uvicorn: 127.0.0.1:{port}, {args.workers} workers, pid {server.pid}, log {log_path}", flush=True)
        try:
            phases = asyncio.run(run_phases(args, f"http://127.0.0.1:{port}", access_key, product_ids, bench))
        finally:
            benchlib.stop_process_group(server)
            print("uvicorn stopped", flush=True)
    clean = print_results(args, phases, log_path)
    if clean:
        shutil.rmtree(logs, ignore_errors=True)


def print_results(args, phases: dict[str, Phase], log_path: Path) -> bool:
    """Print the figures and the target; return whether every request of both phases got 200."""
    if args.conn_max_age is not None:
        conn_max_age = f"{args.conn_max_age} s (--conn-max-age)"
    else:
        from django.conf import settings

        conn_max_age = f"{settings.DATABASES['default']['CONN_MAX_AGE']} s (project setting)"
    print()
    print(f"results ({args.clients} clients, {args.seconds:g} s each, uvicorn with {args.workers} workers, "
          f"throttle rates {args.throttle_rate}, CONN_MAX_AGE {conn_max_age})")
    for phase in phases.values():
        others = {status: count for status, count in phase.statuses.items() if status != 200}
        print(f"  {phase.name:<9} {phase.throughput:8.1f} requests/s   p50 {phase.percentile(0.50) * 1000:7.1f} ms   "
              f"p99 {phase.percentile(0.99) * 1000:7.1f} ms   200: {phase.ok:,}   other statuses: {others or 'none'}   "
              f"errors: {dict(phase.errors) or 'none'}")
        print(f"            machine CPU busy {phase.machine_busy:.0%}, load generator CPU "
              f"{phase.client_cpu_seconds / phase.seconds:.0%} of one core, "
              f"database connections at mid-run {phase.database_connections}")
    baseline, lookup = phases["baseline"], phases["lookup"]
    ratio = lookup.throughput / baseline.throughput if baseline.throughput else float("nan")
    clean = all(not phase.errors and phase.ok == sum(phase.statuses.values()) for phase in phases.values())
    print()
    print("targets")
    print(f"  lookup / baseline throughput (200 responses only) = {ratio:.2f}x (target >= {MIN_THROUGHPUT_RATIO}x)   "
          f"{benchlib.verdict(ratio >= MIN_THROUGHPUT_RATIO)}")
    if not clean:
        print(f"  some requests got another status than 200 or failed; the server log is kept in {log_path}")
    return clean


if __name__ == "__main__":
    main()
