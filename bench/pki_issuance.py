"""Benchmark certificate issuance by one Celery worker against a raw signing loop with the same CA key.

Run from the project root:

    python bench/pki_issuance.py [--count N] [--warmup W] [--pool prefork|solo]

In a database of its own it creates one hosted Director tenant (with its
issuing CA, an EC P-384 key) and submits N + W onboard requests with distinct
EC P-256 CSRs through ``onboarding.services.submit_onboard_request``
(default N 2,000 and W 20).

Baselines, in this process with the tenant's issuing CA key loaded once
through ``pki.services.signer_for``, each over the same N CSRs (parsed
beforehand):

- issue_ec_certificate: ``pki.crypto.issue_ec_certificate``, which checks the
  CSR's signature and key again, builds the production certificate profile
  and signs it;
- sign only: the signer's ``sign`` on the finished builders of that profile
  (built beforehand), which is ``CertificateBuilder.sign`` with the CA key.

Each baseline runs once before and once after the pipeline, and the faster
run counts.

Pipeline: one Celery worker process (``celery -A config worker -c 1``, by
default the prefork pool that ``celery worker`` uses when none is named)
consumes the run's private queue. The requests are approved in one
transaction through ``onboarding.services_portal.approve_onboard_requests``,
the bulk approval of the Director portal, which queues the issuance tasks
with the tenant's schema in their headers once the transaction commits. The
time runs from that commit to the last issuance notification received on the
requests' long-poll channels (``onboarding.events``), so it covers queueing,
the CSR checks, signing, storing, the audit records and the notifications.
W requests go through the pipeline first, untimed, so the worker has loaded
the CA key and opened its connections.

Target: the pipeline's certificates per second are at least 0.5x those of
the issue_ec_certificate baseline, which makes the same certificates as the
pipeline. The ratio to sign only, which leaves out the CSR check and building
the certificate, is printed as well.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import benchlib

MIN_RATIO = 0.5
TENANT_SCHEMA = "bench"
TENANT_HOST = "bench.localhost"
# Seconds to wait for the worker to report "ready.".
START_TIMEOUT = 60
# Seconds the pipeline may take per certificate before the run gives up, about ten times the slowest measured.
SECONDS_PER_CERTIFICATE_LIMIT = 0.5
# Seconds to wait for the notifications of requests the database already shows as issued.
NOTIFICATION_GRACE = 10


@dataclass
class Request:
    product_id: str
    csr_pem: str
    request_id: str = ""


@dataclass
class RawRun:
    name: str
    seconds: list[float] = field(default_factory=list)

    def rate(self, count: int) -> float:
        return count / min(self.seconds)


@dataclass
class PipelineRun:
    approval_seconds: float = 0.0
    enqueue_seconds: float = 0.0
    seconds: float = 0.0
    issued: int = 0
    notified: int = 0
    worker_cpu_seconds: float = 0.0
    timed_out: bool = False


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000,
                        help="certificates to issue in the timed run and in each baseline (default 2,000)")
    parser.add_argument("--warmup", type=int, default=20,
                        help="certificates the worker issues before the timed run (default 20)")
    parser.add_argument("--pool", choices=["prefork", "solo"], default="prefork",
                        help="Celery pool of the worker, always with one process (default prefork)")
    args = parser.parse_args()
    if args.count < 1 or args.warmup < 1:
        parser.error("--count and --warmup must be at least 1")
    return args


def create_tenant():
    from audit.services import Actor
    from tenants.services import create_hosted_tenant

    tenant, _access_key = create_hosted_tenant(name="Bench", schema_name=TENANT_SCHEMA, domain=TENANT_HOST,
                                               actor=Actor.system("bench"))
    return tenant


def make_requests(count: int) -> list[Request]:
    """Make ``count`` Product IDs, each with its own P-256 key and CSR."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from pki import crypto

    requests = []
    for _ in range(count):
        product_id = f"EC100:{uuid.uuid4()}"
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, crypto.common_name_for(product_id))])
        csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(
            ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
        requests.append(Request(product_id, csr.public_bytes(serialization.Encoding.PEM).decode()))
    return requests


def submit(requests: list[Request]) -> None:
    from django_tenants.utils import schema_context

    from onboarding.services import submit_onboard_request

    with schema_context(TENANT_SCHEMA):
        for request in requests:
            result = submit_onboard_request(request.product_id, request.csr_pem, {"firmware": "1.2.0"},
                                            source_address="127.0.0.1")
            if not result.created or result.request.conflict:
                raise SystemExit(f"submitting the onboard request of {request.product_id} did not create "
                                 "a new request without conflict")
            request.request_id = str(result.request.pk)


class BuilderCapture:
    """A stand-in signer that returns the finished builder, so the sign-only baseline signs the production profile."""

    def public_key(self):
        raise NotImplementedError

    def sign(self, builder):
        return builder


def measure_raw(tenant, requests: list[Request], runs: dict[str, RawRun]) -> None:
    """Time both baselines once over ``requests`` and add the times to ``runs``."""
    from django.conf import settings
    from django_tenants.utils import schema_context

    from pki import crypto
    from pki.services import active_issuing_ca, crl_url_for, signer_for

    with schema_context(TENANT_SCHEMA):
        issuing_ca = active_issuing_ca()
        signer = signer_for(issuing_ca)
        ca_certificate = crypto.load_certificate(issuing_ca.certificate_pem)
        crl_url = crl_url_for(tenant, issuing_ca)
    csrs = [crypto.parse_csr_pem(request.csr_pem) for request in requests]

    def issue(signing, csr, product_id):
        return crypto.issue_ec_certificate(signing, ca_certificate, csr, product_id,
                                           valid_days=settings.ZTSP_EC_CERT_DAYS, crl_url=crl_url)

    issue(signer, csrs[0], requests[0].product_id)  # Not timed: the first signature may load OpenSSL state.
    started = time.perf_counter()
    for csr, request in zip(csrs, requests, strict=True):
        issue(signer, csr, request.product_id)
    runs["profile"].seconds.append(time.perf_counter() - started)

    capture = BuilderCapture()
    builders = [issue(capture, csr, request.product_id) for csr, request in zip(csrs, requests, strict=True)]
    started = time.perf_counter()
    for builder in builders:
        signer.sign(builder)
    runs["sign"].seconds.append(time.perf_counter() - started)


def start_worker(pool: str, log_path: Path) -> subprocess.Popen:
    from django.conf import settings

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(benchlib.PROJECT_DIR), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", settings.CELERY_TASK_DEFAULT_QUEUE,
               "--pool", pool, "-c", "1", "-l", "info", "--without-mingle", "--without-gossip",
               "--without-heartbeat"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=benchlib.PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the worker exited with {process.returncode}; log:\n{log_path.read_text()[-3000:]}")
        if "ready." in log_path.read_text():
            return process
        time.sleep(0.1)
    benchlib.stop_process_group(process)
    raise SystemExit(f"the worker did not report ready within {START_TIMEOUT} s; log:\n{log_path.read_text()[-3000:]}")


def group_cpu_seconds(group_id: int) -> float:
    """Return the user and system CPU seconds of the processes in process group ``group_id``."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The fields after the command name, which is in brackets and may contain spaces.
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # The process ended while the folder was read.
        if int(fields[2]) == group_id:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class NotificationCounter(threading.Thread):
    """Count the messages on the long-poll channels of the given requests, with the time of the last one."""

    def __init__(self, request_ids: list[str], expected_per_request: int, deadline: float):
        super().__init__(daemon=True)
        import redis
        from django.conf import settings

        from onboarding.events import channel_for

        self.counts: Counter = Counter()
        self.last_at = 0.0
        self.done = threading.Event()
        self._request_ids = set(request_ids)
        self._expected = expected_per_request
        self._complete = 0
        self._deadline = deadline
        self._pubsub = redis.Redis.from_url(settings.REDIS_URL).pubsub()
        self._pubsub.psubscribe(channel_for(TENANT_SCHEMA, "*"))
        # psubscribe only sends the command. Its reply shows that the subscription is active, so that no
        # notification published from now on is missed.
        confirmation = self._pubsub.get_message(timeout=5)
        if confirmation is None or confirmation["type"] != "psubscribe":
            raise SystemExit(f"subscribing to the long-poll channels of {TENANT_SCHEMA} failed: {confirmation!r}")

    def run(self) -> None:
        try:
            while not self.done.is_set() and time.monotonic() < self._deadline:
                message = self._pubsub.get_message(timeout=0.5)
                if message is None or message["type"] != "pmessage":
                    continue
                request_id = message["channel"].decode().rpartition(":")[2]
                if request_id not in self._request_ids:
                    continue
                self.last_at = time.perf_counter()
                self.counts[request_id] += 1
                if self.counts[request_id] == self._expected:
                    self._complete += 1
                    if self._complete == len(self._request_ids):
                        self.done.set()
        finally:
            self._pubsub.close()

    @property
    def complete(self) -> int:
        return self._complete


def issued_count(request_ids: list[str]) -> int:
    from django_tenants.utils import schema_context

    from onboarding.models import OnboardRequest

    with schema_context(TENANT_SCHEMA):
        return OnboardRequest.objects.filter(pk__in=request_ids, status=OnboardRequest.Status.ISSUED).count()


def run_pipeline(requests: list[Request], worker: subprocess.Popen) -> PipelineRun:
    """Approve ``requests`` in one transaction and wait until the worker has issued and announced every one."""
    from django.db import transaction
    from django_tenants.utils import schema_context

    from audit.services import Actor
    from onboarding.services_portal import approve_onboard_requests

    request_ids = [request.request_id for request in requests]
    limit = 30 + SECONDS_PER_CERTIFICATE_LIMIT * len(requests)
    # Each request gets two messages: the approval's, sent by this process, and the issuance's, sent by the worker.
    notifications = NotificationCounter(request_ids, 2, time.monotonic() + limit)
    notifications.start()
    run = PipelineRun()
    marks: dict[str, float] = {}
    cpu_before = group_cpu_seconds(worker.pid)

    started = time.perf_counter()
    with schema_context(TENANT_SCHEMA), transaction.atomic():
        # Callbacks run in the order they were added, so these two bracket the queueing of the tasks.
        transaction.on_commit(lambda: marks.setdefault("commit", time.perf_counter()))
        approve_onboard_requests(request_ids, actor=Actor.system("bench"))
        transaction.on_commit(lambda: marks.setdefault("queued", time.perf_counter()))
    run.approval_seconds = marks["commit"] - started
    run.enqueue_seconds = marks["queued"] - marks["commit"]

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and not notifications.done.is_set():
        notifications.done.wait(0.5)
        if issued_count(request_ids) == len(request_ids):
            notifications.done.wait(NOTIFICATION_GRACE)
            break
    run.worker_cpu_seconds = group_cpu_seconds(worker.pid) - cpu_before
    notifications.done.set()
    notifications.join()

    run.issued = issued_count(request_ids)
    run.notified = notifications.complete
    run.timed_out = run.notified < len(request_ids)
    run.seconds = notifications.last_at - marks["commit"]
    return run


def release_redis(queue: str) -> None:
    """Delete the broker keys of the run's queue and close this process's broker and notification connections.

    The embedded Redis that the run started is stopped only when no client is connected to it any more.
    """
    import redis
    from django.conf import settings

    from config.celery import app
    from onboarding import events

    client = redis.Redis.from_url(settings.REDIS_URL)
    # The queue name is unique to the run (ZTSP_CELERY_QUEUE, set by benchlib), and kombu names its keys after it.
    keys = list(client.scan_iter(match=f"*{queue}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
    app.pool.force_close_all()
    # The publishing client of onboarding.events has no public close.
    if events._sync_client is not None:
        events._sync_client.close()


def check_certificates(requests: list[Request]) -> str:
    """Check that each request has a stored certificate signed by the tenant's issuing CA; return a result line."""
    from cryptography.exceptions import InvalidSignature
    from django_tenants.utils import schema_context

    from pki import crypto
    from pki.models import IssuedCertificate
    from pki.services import active_issuing_ca

    with schema_context(TENANT_SCHEMA):
        ca_certificate = crypto.load_certificate(active_issuing_ca().certificate_pem)
        certificates = list(IssuedCertificate.objects.filter(
            onboard_request_id__in=[request.request_id for request in requests]))
    bad = 0
    for certificate in certificates:
        try:
            crypto.load_certificate(certificate.certificate_pem).verify_directly_issued_by(ca_certificate)
        except (ValueError, TypeError, InvalidSignature):
            bad += 1
    ok = len(certificates) == len(requests) and bad == 0
    return (f"{len(certificates):,} certificates stored for {len(requests):,} requests, {bad} not signed by the CA   "
            f"{'ok' if ok else 'FAILED'}")


def main() -> None:
    args = parse_args()
    benchlib.exit_on_sigterm()
    benchlib.print_header(f"bench/pki_issuance.py: {args.count:,} certificates, one Celery worker "
                          f"({args.pool} pool) against a raw signing loop")
    logs = Path(tempfile.mkdtemp(prefix="ztsp-bench-pki-"))
    log_path = logs / "worker.log"
    raw = {"profile": RawRun("issue_ec_certificate"), "sign": RawRun("sign only")}
    with benchlib.BenchDatabase():
        started = time.monotonic()
        tenant = create_tenant()
        print(f"created the tenant and its issuing CA in {time.monotonic() - started:.1f} s", flush=True)

        started = time.monotonic()
        requests = make_requests(args.warmup + args.count)
        submit(requests)
        warmup, timed = requests[:args.warmup], requests[args.warmup:]
        print(f"made and submitted {len(requests):,} onboard requests with P-256 CSRs in "
              f"{time.monotonic() - started:.1f} s", flush=True)

        measure_raw(tenant, timed, raw)
        print(f"baselines, first run: {raw['profile'].seconds[0]:.2f} s and {raw['sign'].seconds[0]:.2f} s", flush=True)

        from django.conf import settings
        from django.db import connections

        connections.close_all()
        worker = start_worker(args.pool, log_path)
        print(f"worker: pid {worker.pid}, {args.pool} pool, one process, log {log_path}", flush=True)
        try:
            warm = run_pipeline(warmup, worker)
            print(f"warm-up: {warm.notified} of {len(warmup)} certificates issued and announced", flush=True)
            pipeline = run_pipeline(timed, worker)
            print(f"pipeline: {pipeline.issued:,} issued and {pipeline.notified:,} announced in "
                  f"{pipeline.seconds:.2f} s", flush=True)
        finally:
            benchlib.stop_process_group(worker)
            print("worker stopped", flush=True)

        measure_raw(tenant, timed, raw)
        print(f"baselines, second run: {raw['profile'].seconds[1]:.2f} s and {raw['sign'].seconds[1]:.2f} s",
              flush=True)
        check = check_certificates(timed)
        release_redis(settings.CELERY_TASK_DEFAULT_QUEUE)
    print_results(args, raw, pipeline, check, log_path)
    if not pipeline.timed_out and pipeline.issued == args.count:
        shutil.rmtree(logs, ignore_errors=True)


def print_results(args, raw: dict[str, RawRun], pipeline: PipelineRun, check: str, log_path: Path) -> None:
    count = args.count
    print()
    print(f"results ({count:,} certificates; each baseline's faster of two runs)")
    for run in raw.values():
        times = ", ".join(f"{seconds:.2f} s" for seconds in run.seconds)
        print(f"  {run.name:<22} {run.rate(count):8.1f} certificates/s   ({times})")
    rate = count / pipeline.seconds if pipeline.seconds > 0 else 0.0
    print(f"  {'pipeline':<22} {rate:8.1f} certificates/s   ({pipeline.seconds:.2f} s from commit to last "
          f"notification; queueing took {pipeline.enqueue_seconds:.2f} s of it)")
    print(f"      approval before the commit {pipeline.approval_seconds:.2f} s (not timed), worker CPU "
          f"{pipeline.worker_cpu_seconds:.2f} s ({pipeline.worker_cpu_seconds / max(pipeline.seconds, 1e-9):.0%} "
          "of the timed wall time)")
    print(f"  check: {check}")
    print(f"  check: {pipeline.issued:,} of {count:,} requests issued, {pipeline.notified:,} announced   "
          f"{'ok' if pipeline.issued == count and pipeline.notified == count else 'FAILED'}")

    print()
    print("targets")
    ratio = rate / raw["profile"].rate(count)
    print(f"  pipeline / issue_ec_certificate = {ratio:.2f}x (target >= {MIN_RATIO}x)   "
          f"{benchlib.verdict(ratio >= MIN_RATIO and not pipeline.timed_out)}")
    print(f"  pipeline / sign only = {rate / raw['sign'].rate(count):.2f}x   (reported)")
    if pipeline.timed_out or pipeline.issued != count:
        print(f"  not every certificate was issued and announced in time; the worker log is kept in {log_path}")


if __name__ == "__main__":
    main()
