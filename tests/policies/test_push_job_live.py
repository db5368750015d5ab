"""A push job run by the live stack's Celery worker reaches an EC through the live tunnel gateway."""

from __future__ import annotations

import base64
import json
import urllib.request

import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.gateway.helpers import RawTunnel, onboard_ec

from .helpers import POLICIES_URL, controller, make_policy, wait_for

pytestmark = pytest.mark.e2e


def _api(live_stack, persona, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    credentials = base64.b64encode(f"{persona.tenant_admin_username}:{ADMIN_PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        live_stack.url() + path, method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={"Host": persona.domain, "Authorization": f"Basic {credentials}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_push_job_acked_through_live_stack(world, live_stack, committed, tmp_path):
    ec = onboard_ec(world.a)
    tunnel = RawTunnel(live_stack.tunnel_port, ec.write_files(tmp_path / "ec"))
    try:
        assert tunnel.hello(ec.product_id)["type"] == "hello"
        assert wait_for(lambda: controller(ec.schema_name, ec.product_id).online)
        policy = make_policy(ec.schema_name, {"dns_servers": ["192.0.2.53", "192.0.2.54"]})

        status, job = _api(live_stack, world.a, "POST", f"{POLICIES_URL}/{policy.pk}/push",
                           {"product_ids": [ec.product_id]})
        message = tunnel.receive(timeout=30)
        tunnel.send({"type": "ack", "version": message["version"], "status": "applied"})

        assert status == 202
        assert message == {"type": "config", "version": 1, "body": {"dns_servers": ["192.0.2.53", "192.0.2.54"]}}

        def job_acked_and_done() -> dict | None:
            # The EC's ack can be recorded while the worker is still closing the job, so wait for both.
            current = _api(live_stack, world.a, "GET", f"/api/v1/director/config-push-jobs/{job['id']}")[1]
            return current if current["acked"] == 1 and current["state"] == "done" else None

        finished = wait_for(job_acked_and_done, timeout=15, interval=0.3)
        assert finished is not None, "the push job was not acked and done within 15 s"
        assert (finished["targeted"], finished["sent"], finished["failed"]) == (1, 1, 0)
        assert controller(ec.schema_name, ec.product_id).applied_config_version == 1
    finally:
        tunnel.close()
