"""Benchmark a push of one on-demand policy to many ECs with open tunnels, through the Celery push job.

Run from the project root:

    python bench/config_push.py [--count N] [--parallel P] [--timeout S]

The set-up is that of ``bench/tunnel_idle.py``, whose functions it reuses.
In a database of its own it creates one hosted Director tenant and N
onboarded ECs (default 10,000) with certificates for one shared key. One
``manage.py run_tunnel_gateway`` child process listens on 127.0.0.1, and
this process opens N tunnels to it with asyncio, at most P handshakes at a
time. Each
tunnel replies to a ``config`` message with ``{"type": "ack", "version",
"status": "applied"}``, as ``ec_client.tunnel`` does after it stores the
document, and sends a heartbeat when it has read nothing for the interval.

With all tunnels open, one Celery worker process (``celery -A config worker
-c 1``, consuming the run's private queue) starts, and this process creates
an on-demand policy and calls ``policies.jobs.start_push_job`` for all N ECs
by Product ID. The worker's ``push_policy_task`` assigns the policy, computes
each EC's desired document and publishes a ``config`` message per EC on the
Redis push channel; the gateway writes it to the tunnel and records the ack.

Figure: the time from the call of ``start_push_job`` until every target EC's
applied version equals its desired version in the database and the job
counts N acks, polled every ``POLL_SECONDS``. It also prints the acks per
second, the job's counts, and the gateway's and the worker's CPU time and
the gateway's RSS. There is no target; the time is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import benchlib
import tunnel_idle
from pki_issuance import group_cpu_seconds, release_redis, start_worker
from tunnel_idle import TENANT_SCHEMA, Ec, OpenRun, Tunnel, TunnelClient, cpu_seconds, rss_kib

# Seconds between two reads of the job's counts and the ECs' applied versions.
POLL_SECONDS = 0.5
# Seconds to let the gateway finish the bookkeeping of new tunnels before the push.
SETTLE_SECONDS = 3
POLICY_BODY = {"timezone": "Europe/Paris", "ntp_servers": ["0.pool.ntp.org", "1.pool.ntp.org"],
               "syslog": {"server": "192.0.2.10", "port": 514, "protocol": "udp", "level": "info"}}


@dataclass
class PushRun:
    seconds: float = 0.0
    start_seconds: float = 0.0
    targeted: int = 0
    sent: int = 0
    acked: int = 0
    failed: int = 0
    state: str = ""
    applied: int = 0
    desired: int = 0
    timed_out: bool = False
    gateway_cpu: float = 0.0
    worker_cpu: float = 0.0
    # Seconds from the start to 25%, 50%, 75% and 100% of the acks counted by the job.
    milestones: dict[int, float] = field(default_factory=dict)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="ECs with an open tunnel to push to (default 10,000)")
    parser.add_argument("--parallel", type=int, default=200,
                        help="connects and TLS handshakes in flight at a time (default 200)")
    parser.add_argument("--heartbeat-interval", type=int, default=300,
                        help="seconds between heartbeats, passed to the gateway (default 300)")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds that opening all tunnels, and the push until the last ack, may take each "
                             "(default 600)")
    args = parser.parse_args()
    if args.count < 1 or args.parallel < 1 or args.heartbeat_interval < 1 or args.timeout <= 0:
        parser.error("--count, --parallel, --heartbeat-interval and --timeout must be positive")
    if args.count > 10_000:
        # policies.jobs.MAX_PRODUCT_IDS: one push names at most 10,000 Product IDs.
        parser.error("--count may be at most 10,000, the most Product IDs one push job accepts")
    return args


class AckingClient(TunnelClient):
    """Tunnels that acknowledge every ``config`` message as applied, as ec_client does after storing it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.configs = 0
        self.acks = 0

    async def _beat(self, tunnel: Tunnel, reader: asyncio.StreamReader) -> None:
        """Read the gateway's messages, ack each config, and send a heartbeat after an interval without a message."""
        interval = self.heartbeat_interval
        try:
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), interval)
                except TimeoutError:
                    tunnel.writer.write(json.dumps({"type": "heartbeat", "seq": tunnel.heartbeats}).encode() + b"\n")
                    await tunnel.writer.drain()
                    tunnel.heartbeats += 1
                    continue
                if not line:
                    raise ConnectionError("the gateway closed the tunnel")
                message = json.loads(line)
                if message.get("type") != "config":
                    continue
                self.configs += 1
                ack = {"type": "ack", "version": message["version"], "status": "applied"}
                tunnel.writer.write(json.dumps(ack).encode() + b"\n")
                await tunnel.writer.drain()
                self.acks += 1
        except (OSError, ConnectionError, ValueError):
            self.heartbeat_errors += 1


def create_policy():
    from django_tenants.utils import schema_context

    from audit.services import Actor
    from policies.models import Policy
    from policies.services import create_policy

    with schema_context(TENANT_SCHEMA):
        return create_policy(name="Bench push", kind=Policy.Kind.ON_DEMAND, body=POLICY_BODY,
                             actor=Actor.system("bench"))


def start_push(policy, product_ids: list[str]):
    from django_tenants.utils import schema_context

    from audit.services import Actor
    from policies.jobs import start_push_job

    with schema_context(TENANT_SCHEMA):
        return start_push_job(policy, actor=Actor.system("bench"), product_ids=product_ids)


def read_progress(job_id: int) -> tuple[dict, int, int]:
    """Return the job's counts and state, the ECs with a desired document, and those that applied it."""
    from django.db.models import F
    from django_tenants.utils import schema_context

    from policies.models import DesiredConfig, PushJob

    with schema_context(TENANT_SCHEMA):
        job = PushJob.objects.filter(pk=job_id).values("targeted", "sent", "acked", "failed", "state").get()
        desired = DesiredConfig.objects.count()
        applied = DesiredConfig.objects.filter(edge_controller__applied_config_version=F("version")).count()
    return job, desired, applied


async def push_and_wait(policy, product_ids: list[str], gateway: subprocess.Popen, worker: subprocess.Popen,
                        timeout: float) -> PushRun:
    """Start the push job and poll the database until every EC applied its desired version or ``timeout``."""
    from asgiref.sync import sync_to_async

    run = PushRun()
    count = len(product_ids)
    gateway_cpu = cpu_seconds(gateway.pid)
    worker_cpu = group_cpu_seconds(worker.pid)
    started = time.perf_counter()
    job = await sync_to_async(start_push, thread_sensitive=False)(policy, product_ids)
    run.start_seconds = time.perf_counter() - started
    deadline = started + timeout
    while True:
        counts, run.desired, run.applied = await sync_to_async(read_progress, thread_sensitive=False)(job.pk)
        elapsed = time.perf_counter() - started
        for quarter in (25, 50, 75, 100):
            if quarter not in run.milestones and counts["acked"] * 100 >= quarter * count:
                run.milestones[quarter] = elapsed
        if counts["acked"] >= count and run.applied >= count:
            break
        if time.perf_counter() > deadline:
            run.timed_out = True
            break
        await asyncio.sleep(POLL_SECONDS)
    run.seconds = elapsed
    run.gateway_cpu = cpu_seconds(gateway.pid) - gateway_cpu
    run.worker_cpu = group_cpu_seconds(worker.pid) - worker_cpu
    run.targeted, run.sent, run.acked, run.failed = (counts[name] for name in ("targeted", "sent", "acked", "failed"))
    run.state = counts["state"]
    return run


async def run_push(args, port: int, gateway: subprocess.Popen, worker: subprocess.Popen, ecs: list[Ec],
                   key_path: Path, root_path: Path, policy) -> dict:
    from asgiref.sync import sync_to_async

    figures: dict = {}
    client = AckingClient(port, ecs, key_path, root_path, parallel=args.parallel,
                          heartbeat_interval=args.heartbeat_interval)
    try:
        opened = await client.open_all(args.timeout)
        figures["open"] = opened
        print(f"opened {opened.opened:,} of {args.count:,} tunnels in {opened.seconds:.1f} s "
              f"({opened.retries} retries, {len(opened.failures)} failed)", flush=True)
        await asyncio.sleep(SETTLE_SECONDS)
        figures["online"] = await sync_to_async(tunnel_idle.online_count, thread_sensitive=False)()
        figures["rss_before"] = rss_kib(gateway.pid)
        print(f"{figures['online']:,} ECs recorded online; gateway RSS {figures['rss_before'] / 1024:.1f} MiB",
              flush=True)

        push = await push_and_wait(policy, [ec.product_id for ec in ecs], gateway, worker, args.timeout)
        figures["push"] = push
        figures["rss_after"] = rss_kib(gateway.pid)
        figures["configs"] = client.configs
        figures["acks_sent"] = client.acks
        print(f"push job: {push.acked:,} of {push.targeted:,} acked in {push.seconds:.1f} s "
              f"({'timed out' if push.timed_out else 'complete'})", flush=True)
    finally:
        await client.close_all()
    figures["tunnel_errors"] = client.heartbeat_errors
    return figures


def main() -> None:
    args = parse_args()
    limit = tunnel_idle.raise_descriptor_limit(args.count)
    benchlib.exit_on_sigterm()
    benchlib.print_header(f"bench/config_push.py: one on-demand policy pushed to {args.count:,} ECs with open "
                          "tunnels, one gateway process, one Celery worker")
    print(f"RLIMIT_NOFILE raised to the hard limit, {limit:,}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="ztsp-bench-push-"))
    gateway_log = folder / "gateway.log"
    worker_log = folder / "worker.log"
    figures: dict = {}
    with benchlib.BenchDatabase():
        from django.conf import settings

        started = time.monotonic()
        tenant = tunnel_idle.create_tenant()
        policy = create_policy()
        print(f"created the tenant, its issuing CA and the policy in {time.monotonic() - started:.1f} s", flush=True)

        started = time.monotonic()
        ecs, key_path, root_path = tunnel_idle.issue_ecs(tenant, args.count, folder)
        print(f"issued {len(ecs):,} EC certificates for one shared P-256 key in {time.monotonic() - started:.1f} s",
              flush=True)

        from django.db import connections

        connections.close_all()
        port = tunnel_idle.free_port()
        gateway = tunnel_idle.start_gateway(port, args.heartbeat_interval, gateway_log)
        print(f"gateway: 127.0.0.1:{port}, pid {gateway.pid}, log {gateway_log}", flush=True)
        worker = None
        try:
            worker = start_worker("prefork", worker_log)
            print(f"worker: pid {worker.pid}, prefork pool, one process, log {worker_log}", flush=True)
            figures = asyncio.run(run_push(args, port, gateway, worker, ecs, key_path, root_path, policy))
        finally:
            if worker is not None:
                benchlib.stop_process_group(worker)
                print("worker stopped", flush=True)
            benchlib.stop_process_group(gateway)
            print("gateway stopped", flush=True)
            release_redis(settings.CELERY_TASK_DEFAULT_QUEUE)
            connections.close_all()
    complete = print_results(args, figures, gateway_log, worker_log)
    if complete:
        shutil.rmtree(folder, ignore_errors=True)


def print_results(args, figures: dict, gateway_log: Path, worker_log: Path) -> bool:
    """Print the figures and return whether every tunnel opened and every EC applied the pushed version."""
    count = args.count
    opened: OpenRun = figures["open"]
    push: PushRun = figures["push"]
    complete = (opened.opened == count and not push.timed_out and push.acked == count
                and push.applied == count and push.failed == 0)

    print()
    print(f"results ({count:,} ECs with open tunnels, one gateway process, one Celery worker process)")
    print(f"  open all tunnels:     {opened.seconds:8.1f} s   ({opened.retries} retries, "
          f"{len(opened.failures)} failed)")
    print(f"  push until all acked: {push.seconds:8.1f} s   from start_push_job to the last EC's applied version "
          f"(start_push_job itself {push.start_seconds:.2f} s)")
    print(f"  acks per second:      {push.acked / max(push.seconds, 1e-9):8.1f}")
    quarters = ", ".join(f"{quarter}% at {seconds:.1f} s" for quarter, seconds in sorted(push.milestones.items()))
    print(f"  acked by the job:     {quarters or 'none'}")
    print(f"  job counts:           targeted {push.targeted:,}, sent {push.sent:,}, acked {push.acked:,}, "
          f"failed {push.failed:,}; state {push.state}")
    print(f"  database:             {push.desired:,} desired documents, {push.applied:,} applied")
    print(f"  tunnels:              {figures['configs']:,} config messages received, {figures['acks_sent']:,} acks "
          f"sent, {figures['tunnel_errors']} tunnel errors")
    print(f"  gateway:              CPU {push.gateway_cpu:.1f} s during the push; RSS "
          f"{figures['rss_before'] / 1024:.1f} MiB before, {figures['rss_after'] / 1024:.1f} MiB after")
    print(f"  worker:               CPU {push.worker_cpu:.1f} s during the push")
    print(f"  check: {opened.opened:,} of {count:,} opened, {figures['online']:,} recorded online   "
          f"{'ok' if opened.opened == count and figures['online'] == count else 'FAILED'}")
    print(f"  check: every EC acked and applied the pushed version   {'ok' if complete else 'FAILED'}")
    for failure in opened.failures[:5]:
        print(f"  failed: {failure}")

    print()
    print(f"  time until all {count:,} acked = {push.seconds:.1f} s (reported)")
    if not complete:
        print(f"  not every EC applied the push; the logs are kept in {gateway_log} and {worker_log}")
    return complete


if __name__ == "__main__":
    main()
