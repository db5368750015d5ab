"""A Celery worker killed with SIGKILL in the middle of a batch of signatures."""

from __future__ import annotations

import time

import pytest

from tests.faults.stack import Fleet

pytestmark = pytest.mark.fault

EC_COUNT = 30


def _wait_for_log(stack, name: str, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in stack.log_text(name):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the {name} log within {timeout} s:\n{stack.log_text(name)[-2000:]}")
        time.sleep(0.05)


def test_worker_killed_while_signing_issues_each_ec_once(fault_stack, tmp_path):
    stack = fault_stack
    stack.start_web()
    stack.start_gateway()
    # 0.1 s per signature makes the batch take 3 s, so the kill lands inside its transaction.
    stack.start_worker("worker-1", signing_delay=0.1)
    product_ids = stack.product_ids[:EC_COUNT]
    fleet = Fleet(stack, product_ids, tmp_path / "ecs").start()
    stack.wait_for_pending(product_ids)

    assert stack.approve_all_pending() == EC_COUNT
    _wait_for_log(stack, "worker-1", f"Issuing certificates for {EC_COUNT} onboard requests")
    time.sleep(1)
    stack.kill("worker-1")
    certificates_at_kill = stack.active_certificates()
    stack.start_worker("worker-2")
    results = fleet.join()

    assert certificates_at_kill == {}, "the worker finished the batch before it was killed"
    assert [result.phase for result in results] == ["tunnel_up"] * EC_COUNT, [r.error for r in results if not r.ok]
    assert stack.active_certificates() == dict.fromkeys(product_ids, 1)
    assert stack.query("SELECT count(*) FROM pki_issuedcertificate")[0][0] == EC_COUNT
    assert stack.query("SELECT count(*) FROM onboarding_onboardrequest WHERE status = 'issued'")[0][0] == EC_COUNT
    assert fleet.server_errors() == []


def test_pool_child_killed_while_signing_requeues_at_once(fault_stack, tmp_path):
    stack = fault_stack
    stack.start_web()
    stack.start_gateway()
    stack.start_worker("worker", signing_delay=0.1)
    product_ids = stack.product_ids[:EC_COUNT]
    fleet = Fleet(stack, product_ids, tmp_path / "ecs").start()
    stack.wait_for_pending(product_ids)

    stack.approve_all_pending()
    _wait_for_log(stack, "worker", f"Issuing certificates for {EC_COUNT} onboard requests")
    time.sleep(1)
    stack.kill_pool_child("worker")
    certificates_at_kill = stack.active_certificates()
    results = fleet.join()

    assert certificates_at_kill == {}, "the worker finished the batch before its pool child was killed"
    # The worker put the message back itself (task_reject_on_worker_lost); no visibility timeout passed.
    assert "WorkerLostError" in stack.log_text("worker")
    assert stack.log_text("worker").count(f"Issuing certificates for {EC_COUNT} onboard requests") == 2
    assert [result.phase for result in results] == ["tunnel_up"] * EC_COUNT, [r.error for r in results if not r.ok]
    assert stack.active_certificates() == dict.fromkeys(product_ids, 1)
    assert stack.query("SELECT count(*) FROM pki_issuedcertificate")[0][0] == EC_COUNT
    assert fleet.server_errors() == []
