"""The agent against a server whose database or broker is down: 503 with Retry-After."""

import asyncio

from ec_client.agent import run_agent

from .servers import FakeZtsp, fast_options, make_device

UNAVAILABLE = (503, {"code": "dependency_unavailable", "detail": "The database is unreachable."}, {"Retry-After": "1"})


def test_onboard_503_honors_retry_after(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            ztsp.onboard_script = [UNAVAILABLE]
            make_device(folder, ztsp)
            return ztsp, await run_agent(folder, fast_options(ztsp))

    ztsp, result = asyncio.run(scenario())

    onboards = [moment for endpoint, moment, _ in ztsp.calls if endpoint == "onboard"]
    assert result.phase == "tunnel_up", result.error
    assert len(onboards) == 2
    # Retry-After: 1 plus at most 1 s of jitter, though backoff_max is only 0.5 s.
    assert 1.0 <= onboards[1] - onboards[0] < 2.5


def test_agent_reports_each_http_status(pki, tmp_path):
    folder = tmp_path / "ec1"
    statuses = []

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            ztsp.poll_script = [UNAVAILABLE]
            make_device(folder, ztsp)
            options = fast_options(ztsp, on_response=lambda *reported: statuses.append(reported))
            return await run_agent(folder, options)

    result = asyncio.run(scenario())

    assert result.phase == "tunnel_up", result.error
    steps = [(step, status, retry_after) for _product_id, step, status, retry_after in statuses]
    assert steps[:3] == [("lookup", 200, None), ("onboard", 202, None), ("poll", 503, 1.0)]
    assert ("poll", 200, None) in steps[3:]
    assert {product_id for product_id, *_ in statuses} == {result.product_id}
