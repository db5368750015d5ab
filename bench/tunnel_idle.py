"""Benchmark one tunnel gateway process holding many idle EC tunnels, and a reconnect storm.

Run from the project root:

    python bench/tunnel_idle.py [--count N] [--parallel P] [--heartbeat-interval S] [--timeout S]

In a database of its own it creates one hosted Director tenant and N
onboarded ECs (default 10,000), each with an active certificate from the
tenant's issuing CA. The certificates are made in this process with
``pki.crypto.issue_ec_certificate`` and the CA key from
``pki.services.signer_for``, and stored with ``bulk_create``, because N
onboard requests through the Celery pipeline would take minutes. All ECs
share one P-256 client key, so the run needs one key generation instead of N.
The gateway does not look at the key, only at the certificate's issuer,
serial and Product ID (``gateway.records.authorize_peer``).

The gateway runs as ``manage.py run_tunnel_gateway`` in a child process on
127.0.0.1 and a free port, with ``--heartbeat-interval`` 300 s by default so
the tunnels stay idle. This process opens the N tunnels with asyncio and the
ssl module, at most P handshakes at a time (default 200). Each tunnel sends
``hello``, waits for the gateway's ``hello`` and then sends a heartbeat at
the interval the gateway announced.

Figures:

- the time to open all N tunnels (first connect to the last ``hello`` reply);
- the gateway's resident set size (VmRSS in /proc/<pid>/status) before the
  first tunnel and with all N open, and their difference divided by N;
- a reconnect storm: every client connection is aborted at once and all N
  reconnect; the time from the abort to the last ``hello`` reply.

Target: less than 100 KiB of gateway RSS per open tunnel.

Both processes need N file descriptors and some spare, so the script raises
its RLIMIT_NOFILE soft limit to the hard limit (the gateway inherits it) and
exits with status 1 when the hard limit is too low.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import benchlib

# Target: gateway memory per open tunnel, in KiB.
MAX_KIB_PER_TUNNEL = 100
TENANT_SCHEMA = "bench"
TENANT_HOST = "bench.localhost"
# File descriptors each process needs besides the tunnels: log files, database, Redis, Python's own.
SPARE_DESCRIPTORS = 200
# Seconds to wait for the gateway to print that it listens.
START_TIMEOUT = 60
# Seconds one connect, TLS handshake and hello exchange may take before it is retried.
OPEN_TIMEOUT = 30
OPEN_ATTEMPTS = 3
# Seconds to let the gateway finish the bookkeeping of new tunnels before RSS is read.
SETTLE_SECONDS = 3
CERTIFICATE_BATCH = 1000


@dataclass
class Ec:
    product_id: str
    chain_path: Path
    context: ssl.SSLContext | None = None


@dataclass
class Tunnel:
    ec: Ec
    writer: asyncio.StreamWriter | None = None
    task: asyncio.Task | None = None
    heartbeats: int = 0


@dataclass
class OpenRun:
    seconds: float = 0.0
    opened: int = 0
    retries: int = 0
    failures: list[str] = field(default_factory=list)
    timed_out: bool = False


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="idle tunnels to open (default 10,000)")
    parser.add_argument("--parallel", type=int, default=200,
                        help="connects and TLS handshakes in flight at a time (default 200)")
    parser.add_argument("--heartbeat-interval", type=int, default=300,
                        help="seconds between heartbeats, passed to the gateway (default 300)")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds that opening all tunnels, and the reconnect, may take each (default 600)")
    args = parser.parse_args()
    if args.count < 1 or args.parallel < 1 or args.heartbeat_interval < 1 or args.timeout <= 0:
        parser.error("--count, --parallel, --heartbeat-interval and --timeout must be positive")
    return args


def raise_descriptor_limit(count: int) -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; exit with status 1 when that is below what N needs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = count + SPARE_DESCRIPTORS
    if hard != resource.RLIM_INFINITY and hard < needed:
        print(f"error: {count:,} tunnels need about {needed:,} open files per process, but the hard limit "
              f"RLIMIT_NOFILE is {hard:,} (soft {soft:,}). Raise it (ulimit -Hn, or LimitNOFILE for a service) "
              f"or pass a --count below {hard - SPARE_DESCRIPTORS:,}.", file=sys.stderr)
        raise SystemExit(1)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def create_tenant():
    from audit.services import Actor
    from tenants.services import create_hosted_tenant

    tenant, _access_key = create_hosted_tenant(name="Bench", schema_name=TENANT_SCHEMA, domain=TENANT_HOST,
                                               actor=Actor.system("bench"))
    return tenant


def issue_ecs(tenant, count: int, folder: Path) -> tuple[list[Ec], Path, Path]:
    """Create ``count`` onboarded ECs with active certificates for one shared key.

    Returns the ECs, the key file and the root CA file. Each EC's client chain
    (its certificate, then the issuing CA) is written to its own file, because
    the ssl module loads certificates from files only.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from django.conf import settings
    from django_tenants.utils import schema_context

    from onboarding.models import EdgeController
    from pki import crypto
    from pki.models import IssuedCertificate
    from pki.services import active_issuing_ca, crl_url_for, ensure_root_ca, signer_for

    key = ec.generate_private_key(ec.SECP256R1())
    key_path = folder / "key.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    # issue_ec_certificate takes the subject from the Product ID and only the public key from the CSR.
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shared-bench-key")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())

    ecs: list[Ec] = []
    with schema_context(TENANT_SCHEMA):
        issuing_ca = active_issuing_ca()
        signer = signer_for(issuing_ca)
        ca_certificate = crypto.load_certificate(issuing_ca.certificate_pem)
        crl_url = crl_url_for(tenant, issuing_ca)
        root_path = folder / "root.pem"
        root_path.write_text(ensure_root_ca().certificate_pem)

        for start in range(0, count, CERTIFICATE_BATCH):
            product_ids = [f"EC100:{uuid.uuid4()}" for _ in range(min(CERTIFICATE_BATCH, count - start))]
            controllers = EdgeController.objects.bulk_create(
                [EdgeController(product_id=product_id, state=EdgeController.State.ONBOARDED)
                 for product_id in product_ids])
            rows = []
            for controller in controllers:
                certificate = crypto.issue_ec_certificate(signer, ca_certificate, csr, controller.product_id,
                                                          valid_days=settings.ZTSP_EC_CERT_DAYS, crl_url=crl_url)
                pem = crypto.cert_to_pem(certificate)
                rows.append(IssuedCertificate(
                    serial_hex=crypto.serial_hex(certificate), product_id=controller.product_id,
                    edge_controller=controller, issuing_ca=issuing_ca, certificate_pem=pem,
                    not_before=certificate.not_valid_before_utc, not_after=certificate.not_valid_after_utc,
                ))
                chain_path = folder / f"chain-{len(ecs)}.pem"
                chain_path.write_text(pem + issuing_ca.certificate_pem)
                ecs.append(Ec(controller.product_id, chain_path))
            IssuedCertificate.objects.bulk_create(rows)
    return ecs, key_path, root_path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gateway(port: int, heartbeat_interval: int, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "manage.py", "run_tunnel_gateway", "--bind", "127.0.0.1", "--port", str(port),
               "--heartbeat-interval", str(heartbeat_interval)]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=benchlib.PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the gateway exited with {process.returncode}; log:\n{log_path.read_text()[-3000:]}")
        if f"listening on 127.0.0.1:{port}" in log_path.read_text():
            return process
        time.sleep(0.1)
    benchlib.stop_process_group(process)
    raise SystemExit(f"the gateway did not listen within {START_TIMEOUT} s; log:\n{log_path.read_text()[-3000:]}")


def rss_kib(pid: int) -> int:
    """Return the resident set size of process ``pid`` in KiB, from VmRSS in /proc/<pid>/status."""
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit(f"/proc/{pid}/status has no VmRSS line; is the gateway still running?")
    return int(match.group(1))


def cpu_seconds(pid: int) -> float:
    """Return the user and system CPU seconds of process ``pid`` so far, from /proc/<pid>/stat."""
    # The fields after the command name, which is in brackets and may contain spaces.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_context(ec: Ec, key_path: Path, root_path: Path) -> ssl.SSLContext:
    if ec.context is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_verify_locations(cafile=root_path)
        context.load_cert_chain(certfile=ec.chain_path, keyfile=key_path)
        ec.context = context
    return ec.context


class TunnelClient:
    """Open and hold the tunnels of many ECs from one event loop."""

    def __init__(self, port: int, ecs: list[Ec], key_path: Path, root_path: Path, *, parallel: int,
                 heartbeat_interval: float):
        self.port = port
        self.heartbeat_interval = heartbeat_interval
        self.tunnels = [Tunnel(ec) for ec in ecs]
        self.key_path = key_path
        self.root_path = root_path
        self.limit = asyncio.Semaphore(parallel)
        self.heartbeat_errors = 0

    async def _open_once(self, tunnel: Tunnel) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context = client_context(tunnel.ec, self.key_path, self.root_path)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, ssl=context,
                                                       server_hostname="localhost")
        try:
            hello = {"type": "hello", "product_id": tunnel.ec.product_id, "firmware": "bench", "config_version": 0}
            writer.write(json.dumps(hello).encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
            reply = json.loads(line) if line else None
            if not reply or reply.get("type") != "hello":
                raise ConnectionError(f"expected a hello reply, got {reply!r}")
        except BaseException:
            writer.transport.abort()
            raise
        return reader, writer

    async def _open(self, tunnel: Tunnel, run: OpenRun) -> None:
        error: BaseException | None = None
        for attempt in range(OPEN_ATTEMPTS):
            async with self.limit:
                try:
                    reader, writer = await asyncio.wait_for(self._open_once(tunnel), OPEN_TIMEOUT)
                except (OSError, ssl.SSLError, ConnectionError, TimeoutError, ValueError) as caught:
                    error = caught
                    if attempt + 1 < OPEN_ATTEMPTS:
                        run.retries += 1
                    continue
            tunnel.writer = writer
            tunnel.task = asyncio.create_task(self._beat(tunnel, reader))
            run.opened += 1
            return
        run.failures.append(f"{tunnel.ec.product_id}: {error.__class__.__name__}: {error}")

    async def _beat(self, tunnel: Tunnel, reader: asyncio.StreamReader) -> None:
        """Send a heartbeat every interval and read its echo, as an idle EC does."""
        interval = self.heartbeat_interval
        try:
            while True:
                await asyncio.sleep(interval)
                tunnel.writer.write(json.dumps({"type": "heartbeat", "seq": tunnel.heartbeats}).encode() + b"\n")
                await tunnel.writer.drain()
                line = await asyncio.wait_for(reader.readline(), interval)
                if not line:
                    raise ConnectionError("the gateway closed the tunnel")
                tunnel.heartbeats += 1
        except (OSError, ConnectionError, TimeoutError):
            self.heartbeat_errors += 1

    async def open_all(self, timeout: float) -> OpenRun:
        run = OpenRun()
        started = time.perf_counter()
        tasks = [asyncio.create_task(self._open(tunnel, run)) for tunnel in self.tunnels]
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
            run.timed_out = True
        run.seconds = time.perf_counter() - started
        return run

    def abort_all(self) -> None:
        """Abort every connection at once, as a network drop would end them, without a TLS close_notify."""
        for tunnel in self.tunnels:
            if tunnel.task is not None:
                tunnel.task.cancel()
                tunnel.task = None
            if tunnel.writer is not None:
                tunnel.writer.transport.abort()
                tunnel.writer = None

    async def close_all(self) -> None:
        self.abort_all()
        # Let the aborted transports release their sockets.
        await asyncio.sleep(0.5)


def online_count() -> int:
    from django_tenants.utils import schema_context

    from onboarding.models import EdgeController

    with schema_context(TENANT_SCHEMA):
        return EdgeController.objects.filter(online=True).count()


async def run_tunnels(args, port: int, gateway: subprocess.Popen, ecs: list[Ec], key_path: Path,
                      root_path: Path) -> dict:
    from asgiref.sync import sync_to_async

    figures: dict = {}
    client = TunnelClient(port, ecs, key_path, root_path, parallel=args.parallel,
                          heartbeat_interval=args.heartbeat_interval)
    await asyncio.sleep(1)
    figures["rss_before"] = rss_kib(gateway.pid)
    print(f"gateway RSS before the first tunnel: {figures['rss_before'] / 1024:.1f} MiB", flush=True)
    try:
        cpu_before = cpu_seconds(gateway.pid)
        opened = await client.open_all(args.timeout)
        figures["open"] = opened
        figures["cpu_open"] = cpu_seconds(gateway.pid) - cpu_before
        print(f"opened {opened.opened:,} of {args.count:,} tunnels in {opened.seconds:.1f} s "
              f"({opened.retries} retries, {len(opened.failures)} failed)", flush=True)
        await asyncio.sleep(SETTLE_SECONDS)
        figures["rss_open"] = rss_kib(gateway.pid)
        figures["online_open"] = await sync_to_async(online_count, thread_sensitive=False)()
        print(f"gateway RSS with {opened.opened:,} tunnels open: {figures['rss_open'] / 1024:.1f} MiB; "
              f"{figures['online_open']:,} ECs recorded online", flush=True)

        cpu_before = cpu_seconds(gateway.pid)
        started = time.perf_counter()
        client.abort_all()
        reopened = await client.open_all(args.timeout)
        reopened.seconds = time.perf_counter() - started
        figures["storm"] = reopened
        figures["cpu_storm"] = cpu_seconds(gateway.pid) - cpu_before
        print(f"reconnect storm: {reopened.opened:,} of {args.count:,} tunnels back in {reopened.seconds:.1f} s "
              f"({reopened.retries} retries, {len(reopened.failures)} failed)", flush=True)
        await asyncio.sleep(SETTLE_SECONDS)
        figures["rss_storm"] = rss_kib(gateway.pid)
        figures["online_storm"] = await sync_to_async(online_count, thread_sensitive=False)()
        print(f"gateway RSS after the reconnect: {figures['rss_storm'] / 1024:.1f} MiB; "
              f"{figures['online_storm']:,} ECs recorded online", flush=True)
    finally:
        await client.close_all()
    figures["heartbeat_errors"] = client.heartbeat_errors
    return figures


def main() -> None:
    args = parse_args()
    limit = raise_descriptor_limit(args.count)
    benchlib.exit_on_sigterm()
    benchlib.print_header(f"bench/tunnel_idle.py: {args.count:,} idle tunnels to one gateway process, "
                          f"heartbeat every {args.heartbeat_interval} s")
    print(f"RLIMIT_NOFILE raised to the hard limit, {limit:,}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="ztsp-bench-tunnel-"))
    log_path = folder / "gateway.log"
    figures: dict = {}
    with benchlib.BenchDatabase():
        started = time.monotonic()
        tenant = create_tenant()
        print(f"created the tenant and its issuing CA in {time.monotonic() - started:.1f} s", flush=True)

        started = time.monotonic()
        ecs, key_path, root_path = issue_ecs(tenant, args.count, folder)
        print(f"issued {len(ecs):,} EC certificates for one shared P-256 key in {time.monotonic() - started:.1f} s",
              flush=True)

        from django.db import connections

        connections.close_all()
        port = free_port()
        gateway = start_gateway(port, args.heartbeat_interval, log_path)
        print(f"gateway: 127.0.0.1:{port}, pid {gateway.pid}, log {log_path}", flush=True)
        try:
            figures = asyncio.run(run_tunnels(args, port, gateway, ecs, key_path, root_path))
        finally:
            benchlib.stop_process_group(gateway)
            print("gateway stopped", flush=True)
            connections.close_all()
    complete = print_results(args, figures, log_path)
    if complete:
        shutil.rmtree(folder, ignore_errors=True)


def print_results(args, figures: dict, log_path: Path) -> bool:
    """Print the figures and the target; return whether every tunnel opened both times."""
    count = args.count
    opened: OpenRun = figures["open"]
    storm: OpenRun = figures["storm"]
    complete = opened.opened == count and storm.opened == count
    delta = figures["rss_open"] - figures["rss_before"]
    per_tunnel = delta / max(opened.opened, 1)

    print()
    print(f"results ({count:,} tunnels, one client key shared by all ECs, at most {args.parallel} handshakes "
          "in flight)")
    print(f"  open all:         {opened.seconds:8.1f} s   ({opened.opened / opened.seconds:,.0f} tunnels/s, "
          f"{opened.retries} retries), gateway CPU {figures['cpu_open']:.1f} s")
    print(f"  reconnect storm:  {storm.seconds:8.1f} s   from aborting every connection to the last hello reply "
          f"({storm.retries} retries), gateway CPU {figures['cpu_storm']:.1f} s")
    print(f"  gateway RSS:      {figures['rss_before'] / 1024:8.1f} MiB before, {figures['rss_open'] / 1024:.1f} MiB "
          f"with all open, {figures['rss_storm'] / 1024:.1f} MiB after the reconnect storm")
    print(f"  check: {opened.opened:,} of {count:,} opened, {storm.opened:,} reopened   "
          f"{'ok' if complete else 'FAILED'}")
    print(f"  check: {figures['online_open']:,} and {figures['online_storm']:,} ECs recorded online   "
          f"{'ok' if figures['online_open'] == count and figures['online_storm'] == count else 'FAILED'}")
    print(f"  heartbeat errors: {figures['heartbeat_errors']}")
    for failure in (opened.failures + storm.failures)[:5]:
        print(f"  failed: {failure}")

    print()
    print("targets")
    print(f"  gateway memory per tunnel = {delta / 1024:.1f} MiB / {opened.opened:,} = {per_tunnel:.1f} KiB "
          f"(target < {MAX_KIB_PER_TUNNEL} KiB)   {benchlib.verdict(per_tunnel < MAX_KIB_PER_TUNNEL and complete)}")
    if not complete:
        print(f"  not every tunnel opened; the gateway log is kept in {log_path}")
    return complete


if __name__ == "__main__":
    main()
