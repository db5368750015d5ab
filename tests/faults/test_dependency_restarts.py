"""PostgreSQL and Redis restarted while ECs onboard: every EC still ends onboarded, once.

While a dependency is down the web server returns 503 with Retry-After and a
JSON ``code``; the ECs wait and send the same request again. No other 5xx may
reach an EC.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.faults.stack import POOL_TIMEOUT_SECONDS, Fleet

pytestmark = pytest.mark.fault

EC_COUNT = 20
# Seconds a dependency stays down in each restart.
DOWN_SECONDS = 4
# Seconds a 503 may still arrive after a restart ended. psycopg_pool 3.3 retries a failed connection
# after 1, 2, 4... s (+-10 %), so after an outage of DOWN_SECONDS its next try can come up to 1.1 x that
# late, and a request waits POOL_TIMEOUT_SECONDS for it. 2 s more cover the reply on a busy machine.
LATE_ERROR_GRACE = POOL_TIMEOUT_SECONDS + 1.1 * DOWN_SECONDS + 2


def _assert_server_errors_only_during_outages(stack, fleet) -> None:
    errors = fleet.server_errors()
    for error in errors:
        assert error.status == 503, error
        assert error.retry_after is not None, error
        assert any(outage.start <= error.at <= outage.end + LATE_ERROR_GRACE for outage in stack.outages), (
            f"{error} arrived outside the outages {stack.outages}"
        )


def _assert_each_ec_onboarded_once(stack, product_ids, results) -> None:
    assert [result.phase for result in results] == ["tunnel_up"] * len(product_ids), [
        result.error for result in results if not result.ok
    ]
    assert stack.active_certificates() == dict.fromkeys(product_ids, 1)
    assert stack.query("SELECT count(*) FROM pki_issuedcertificate")[0][0] == len(product_ids)
    assert stack.query("SELECT count(*) FROM onboarding_onboardrequest")[0][0] == len(product_ids)


def _approve_in_background(stack, product_ids) -> threading.Thread:
    """Approve the ECs as soon as they are all pending, retrying while the Director API fails."""

    def approve():
        stack.wait_for_pending(product_ids, timeout=90)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                stack.approve_each_pending()
            except OSError:
                time.sleep(1)
                continue
            if not stack.query("SELECT 1 FROM onboarding_onboardrequest WHERE status = 'pending'"):
                return
            time.sleep(1)

    thread = threading.Thread(target=approve, name="approver", daemon=True)
    thread.start()
    return thread


def test_postgres_restart_while_ecs_onboard(fault_stack, tmp_path):
    stack = fault_stack
    # Each approval queues its own task; at 0.2 s per signature the worker is still signing when the
    # database goes down the second time.
    stack.start_all(signing_delay=0.2)
    product_ids = stack.product_ids[:EC_COUNT]
    first, rest = product_ids[: EC_COUNT // 2], product_ids[EC_COUNT // 2:]

    fleet = Fleet(stack, first, tmp_path / "ecs").start()
    stack.wait_for_pending(first[:2])
    # The first half is onboarding; the second half boots while the database is down.
    late_fleet = Fleet(stack, rest, tmp_path / "ecs")
    stack.restart_postgres(DOWN_SECONDS, during=late_fleet.start)
    approver = _approve_in_background(stack, product_ids)
    approver.join(120)
    # Down again while the worker signs and the ECs wait on their long-polls.
    stack.restart_postgres(DOWN_SECONDS)
    results = fleet.join() + late_fleet.join()

    _assert_each_ec_onboarded_once(stack, product_ids, results)
    _assert_server_errors_only_during_outages(stack, fleet)
    _assert_server_errors_only_during_outages(stack, late_fleet)
    assert any(error.status == 503 for error in fleet.server_errors() + late_fleet.server_errors())


def test_redis_restart_while_ecs_onboard(fault_stack, tmp_path):
    stack = fault_stack
    stack.start_all()
    stack.start_beat()
    product_ids = stack.product_ids[:EC_COUNT]
    first, rest = product_ids[: EC_COUNT // 2], product_ids[EC_COUNT // 2:]

    fleet = Fleet(stack, first, tmp_path / "ecs").start()
    stack.wait_for_pending(first[:2])
    late_fleet = Fleet(stack, rest, tmp_path / "ecs")
    stack.restart_redis(DOWN_SECONDS, during=late_fleet.start)
    stack.wait_for_pending(product_ids)
    # Approved while the broker is down: the approval commits, but its issuance task cannot be queued.
    stack.restart_redis(DOWN_SECONDS, during=stack.approve_all_pending)
    results = fleet.join() + late_fleet.join()

    assert f"Queued the issuance of {EC_COUNT} onboard requests of acme again" in stack.log_text("worker")
    _assert_each_ec_onboarded_once(stack, product_ids, results)
    _assert_server_errors_only_during_outages(stack, fleet)
    _assert_server_errors_only_during_outages(stack, late_fleet)
