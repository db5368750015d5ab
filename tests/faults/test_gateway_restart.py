"""The tunnel gateway killed and started again: every EC opens its tunnel again."""

from __future__ import annotations

import time

import pytest

from tests.faults.stack import Fleet

pytestmark = pytest.mark.fault

EC_COUNT = 10


def _wait_for_tunnels(stack, product_ids, since, timeout: float = 60) -> None:
    """Wait until every EC is online with a tunnel opened after ``since`` (a database timestamp)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = stack.query("SELECT count(*) FROM onboarding_edgecontroller WHERE online AND tunnel_connected_at > %s",
                           since)
        if rows[0][0] == len(product_ids):
            return
        time.sleep(0.3)
    raise AssertionError(f"not every EC reopened its tunnel within {timeout} s:\n{stack.log_text('gateway')[-2000:]}")


def test_ecs_reconnect_after_gateway_restart(fault_stack, tmp_path):
    stack = fault_stack
    stack.start_all()
    product_ids = stack.product_ids[:EC_COUNT]
    fleet = Fleet(stack, product_ids, tmp_path / "ecs", exit_when_connected=False, deadline_seconds=90).start()
    stack.wait_for_pending(product_ids)
    stack.approve_all_pending()
    _wait_for_tunnels(stack, product_ids, since="-infinity")

    restarted_at = stack.query("SELECT now()")[0][0]
    stack.kill("gateway")
    time.sleep(2)
    stack.start_gateway()
    _wait_for_tunnels(stack, product_ids, since=restarted_at)
    fleet.stop()

    assert [result.phase for result in fleet.results] == ["tunnel_up"] * EC_COUNT
    assert stack.active_certificates() == dict.fromkeys(product_ids, 1)
    assert fleet.server_errors() == []
