"""Two identical onboard requests at the same instant, each to another web process: one request, one certificate."""

from __future__ import annotations

import threading

import pytest

from tests.factories import make_csr
from tests.faults.stack import fetch_json, free_port

pytestmark = pytest.mark.fault

EC_COUNT = 10


def _send_together(stack, ports, product_id, csr_pem) -> list[tuple[int, dict]]:
    barrier = threading.Barrier(len(ports))
    responses: list = [None] * len(ports)

    def send(index, port):
        barrier.wait()
        responses[index] = fetch_json(
            f"http://127.0.0.1:{port}/api/v1/onboard", host=f"{stack.world['domain']}:{stack.web_port}",
            token=stack.world["tenant_access_key"], body={"product_id": product_id, "csr": csr_pem, "facts": {}},
        )

    threads = [threading.Thread(target=send, args=(index, port)) for index, port in enumerate(ports)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return responses


def test_identical_requests_at_once_make_one_request(fault_stack):
    stack = fault_stack
    stack.start_all()
    second_port = stack.start_web("web-2", free_port())
    product_ids = stack.product_ids[:EC_COUNT]

    for product_id in product_ids:
        csr_pem, _key = make_csr(product_id)
        responses = _send_together(stack, [stack.web_port, second_port], product_id, csr_pem)

        assert [status for status, _body in responses] == [202, 202], responses
        assert responses[0][1]["request_id"] == responses[1][1]["request_id"]
    stack.approve_all_pending()
    stack.wait_for_issued(product_ids)

    rows = stack.query("SELECT product_id, count(*) FROM onboarding_onboardrequest GROUP BY product_id")
    assert dict(rows) == dict.fromkeys(product_ids, 1)
    assert stack.active_certificates() == dict.fromkeys(product_ids, 1)
    assert stack.query("SELECT count(*) FROM pki_issuedcertificate")[0][0] == EC_COUNT
