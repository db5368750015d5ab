"""Metrics of the Celery worker and the tunnel gateway, from real processes on their own metrics ports."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid

import pytest
from django.test import Client

from config.celery import app as celery_app
from tests.deploy.conftest import TOKEN
from tests.deploy.helpers import parse_samples, sample, scrape_client, scrape_port
from tests.gateway.helpers import RawTunnel, onboard_ec

pytestmark = pytest.mark.e2e

TASK = "pki.tasks.refresh_crls_task"


def _wait_for_samples(port: int, condition, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, body = scrape_port(port, TOKEN)
        assert status == 200, body
        samples = parse_samples(body)
        if condition(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def test_worker_metrics_port_requires_token(processes):
    status, body = scrape_port(processes.worker_metrics_port)

    assert status == 401
    assert '"metrics_token_invalid"' in body


def test_worker_records_task_latency(processes):
    celery_app.send_task(TASK, queue=processes.queue)

    samples = _wait_for_samples(
        processes.worker_metrics_port,
        lambda found: sample(found, "ztsp_celery_task_run_seconds_count", task=TASK, state="SUCCESS") >= 1)

    assert sample(samples, "ztsp_celery_task_run_seconds_count", task=TASK, state="SUCCESS") >= 1
    assert sample(samples, "ztsp_celery_task_queue_wait_seconds_count", task=TASK) >= 1
    assert sample(samples, "ztsp_celery_task_queue_wait_seconds_sum", task=TASK) < 30


def test_gateway_metrics_count_connected_tunnel(processes, world, committed, tmp_path):
    ec = onboard_ec(world.a)
    before = parse_samples(scrape_port(processes.gateway_metrics_port, TOKEN)[1])

    tunnel = RawTunnel(processes.tunnel_port, ec.write_files(tmp_path / "ec"))
    try:
        assert tunnel.hello(ec.product_id)["type"] == "hello"
        during = _wait_for_samples(
            processes.gateway_metrics_port,
            lambda found: sample(found, "ztsp_gateway_tunnels_connected") > sample(
                before, "ztsp_gateway_tunnels_connected"))
    finally:
        tunnel.close()

    assert sample(during, "ztsp_gateway_tunnels_connected") == sample(before, "ztsp_gateway_tunnels_connected") + 1


def test_web_metrics_count_online_tunnel(processes, world, committed, tmp_path, settings):
    settings.ZTSP_METRICS_CACHE_SECONDS = 0
    settings.ZTSP_METRICS_TOKEN = TOKEN
    client = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    ec = onboard_ec(world.a)
    before = scrape_client(client)

    tunnel = RawTunnel(processes.tunnel_port, ec.write_files(tmp_path / "ec"))
    try:
        assert tunnel.hello(ec.product_id)["type"] == "hello"
        during = scrape_client(client)
    finally:
        tunnel.close()

    assert sample(during, "ztsp_tunnels_online", schema="acme") == \
        sample(before, "ztsp_tunnels_online", schema="acme") + 1


def _scrape_live_web(live_stack) -> dict:
    request = urllib.request.Request(f"{live_stack.url()}/metrics", headers={"Host": "localhost"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return parse_samples(response.read().decode())


def test_long_poll_response_counted(live_stack):
    before = _scrape_live_web(live_stack)
    request = urllib.request.Request(f"{live_stack.url()}/api/v1/onboard/{uuid.uuid4()}?wait=0",
                                     headers={"Host": "acme.localhost", "Authorization": "Bearer wrong-token"})

    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as error:
        status = str(error.code)
    after = _scrape_live_web(live_stack)

    assert sample(after, "ztsp_http_requests_total", method="GET", status=status) == \
        sample(before, "ztsp_http_requests_total", method="GET", status=status) + 1
