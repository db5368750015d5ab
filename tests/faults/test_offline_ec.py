"""An EC switched off while its request waits for approval gets its certificate when it comes back."""

from __future__ import annotations

import json

import pytest

from tests.faults.stack import Fleet

pytestmark = pytest.mark.fault

EC_COUNT = 3


def test_offline_ec_gets_certificate_when_back(fault_stack, tmp_path):
    stack = fault_stack
    stack.start_all()
    product_ids = stack.product_ids[:EC_COUNT]
    fleet = Fleet(stack, product_ids, tmp_path / "ecs").start()
    stack.wait_for_pending(product_ids)
    fleet.stop()
    request_ids = {json.loads((folder / "state.json").read_text())["request_id"] for folder in fleet.state_dirs}

    stack.approve_all_pending()
    stack.wait_for_issued(product_ids)
    back = Fleet(stack, product_ids, tmp_path / "ecs").start()
    results = back.join()

    assert [result.phase for result in fleet.results] == ["onboard_requested"] * EC_COUNT
    assert [result.phase for result in results] == ["tunnel_up"] * EC_COUNT, [result.error for result in results]
    assert {result.request_id for result in results} == request_ids
    assert stack.query("SELECT count(*) FROM onboarding_onboardrequest")[0][0] == EC_COUNT
    assert stack.active_certificates() == dict.fromkeys(product_ids, 1)
    assert fleet.server_errors() + back.server_errors() == []
