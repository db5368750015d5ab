import asyncio
import logging
import random
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest

from ec_client.http import (
    Backoff,
    OverrideResolver,
    RepeatLimitedLog,
    ResolveOverrides,
    make_connector,
    parse_resolve_rule,
    parse_retry_after,
)

from .servers import FakeZtsp


def _seeded(seed: int) -> random.Random:
    # Seeded so the bounds checks are reproducible. Jitter is not a secret.
    return random.Random(seed)  # noqa: S311


def test_resolve_rule_parses_exact_host():
    rule = parse_resolve_rule("acme.localhost:8000:127.0.0.1")

    assert rule.host == "acme.localhost"
    assert rule.port == 8000
    assert rule.address == "127.0.0.1"


def test_resolve_rule_parses_bracketed_ipv6():
    rule = parse_resolve_rule("acme.localhost:8443:[::1]")

    assert rule.address == "::1"


@pytest.mark.parametrize(
    "text",
    [
        "acme.localhost:8000",
        "acme.localhost:port:127.0.0.1",
        "acme:8000:not-an-ip",
        "a.*.b:1:127.0.0.1",
    ],
)
def test_resolve_rule_rejects_invalid(text):
    with pytest.raises(ValueError, match="resolve override"):
        parse_resolve_rule(text)


def test_overrides_prefer_exact_over_wildcard():
    overrides = ResolveOverrides.parse(["*.localhost:80:127.0.0.2", "acme.localhost:80:127.0.0.3"])

    assert overrides.lookup("acme.localhost", 80) == "127.0.0.3"
    assert overrides.lookup("other.localhost", 80) == "127.0.0.2"
    assert overrides.lookup("deep.acme.localhost", 80) == "127.0.0.2"
    assert overrides.lookup("localhost", 80) is None
    assert overrides.lookup("acme.localhost", 81) is None


def test_resolver_falls_back_for_unmatched_host():
    async def scenario():
        resolver = OverrideResolver(ResolveOverrides.parse(["acme.localhost:80:127.0.0.1"]))
        try:
            return await resolver.resolve("localhost", 80, socket.AF_INET)
        finally:
            await resolver.close()

    results = asyncio.run(scenario())

    assert [result["host"] for result in results] == ["127.0.0.1"]


async def _get_host_header(resolve: str, url: str) -> str:
    connector = make_connector(ResolveOverrides.parse([resolve]), limit=2)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(url) as response:
            return (await response.json())["host"]


def test_resolve_override_reaches_named_host(pki):
    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            port = ztsp.http_port
            host = await _get_host_header(f"acme.localhost:{port}:127.0.0.1", f"http://acme.localhost:{port}/echo-host")
            return host, port

    host, port = asyncio.run(scenario())

    assert host == f"acme.localhost:{port}"


def test_resolve_wildcard_reaches_any_subdomain(pki):
    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            port = ztsp.http_port
            host = await _get_host_header(f"*.localhost:{port}:127.0.0.1", f"http://globex.localhost:{port}/echo-host")
            return host, port

    host, port = asyncio.run(scenario())

    assert host == f"globex.localhost:{port}"


def test_backoff_has_jitter_and_cap():
    backoff = Backoff(cap=4.0, base=1.0, rng=_seeded(7))

    delays = [backoff.next_delay() for _ in range(200)]

    assert max(delays) <= 4.0
    assert len(set(delays)) == len(delays)
    assert delays[0] <= 1.0
    assert delays[1] <= 2.0
    # Full jitter: once capped, delays spread over [0, cap], not bunched at the cap.
    assert min(delays[10:]) < 1.0
    assert max(delays[10:]) > 3.0


def test_backoff_reset_restarts_from_base():
    backoff = Backoff(cap=60.0, base=1.0, rng=_seeded(1))
    for _ in range(10):
        backoff.next_delay()

    backoff.reset()

    assert backoff.next_delay() <= 1.0


def test_backoff_max_delay_stays_near_cap():
    backoff = Backoff(cap=10.0, rng=_seeded(3))

    delays = [backoff.max_delay() for _ in range(100)]

    assert min(delays) >= 5.0
    assert max(delays) <= 10.0


def test_retry_after_delay_adds_jitter():
    backoff = Backoff(cap=60.0, rng=_seeded(5))

    delays = [backoff.retry_after_delay(20.0) for _ in range(100)]

    assert min(delays) >= 20.0
    assert max(delays) <= 22.0
    assert len(set(delays)) > 90


def test_retry_after_delay_is_capped():
    backoff = Backoff(cap=60.0, rng=_seeded(5))

    assert backoff.retry_after_delay(10**9) < 3600 * 1.11


def test_parse_retry_after_seconds_and_date():
    future = datetime.now(UTC) + timedelta(seconds=120)

    assert parse_retry_after("7") == 7.0
    assert 100 < parse_retry_after(format_datetime(future, usegmt=True)) <= 120
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_repeat_limited_log_counts_repeats(caplog):
    log = RepeatLimitedLog(logging.getLogger("test.repeat"), period=3600)
    caplog.set_level(logging.INFO, logger="test.repeat")

    for _ in range(5):
        log.log(logging.WARNING, "lookup 409", "%s: not claimed", "EC100:x")
    log.log(logging.WARNING, "lookup 500", "%s: server error", "EC100:x")

    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["EC100:x: not claimed", "EC100:x: server error"]


def test_repeat_limited_log_reports_count_after_period(caplog, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("ec_client.http.time.monotonic", lambda: clock[0])
    log = RepeatLimitedLog(logging.getLogger("test.repeat"), period=10)
    caplog.set_level(logging.INFO, logger="test.repeat")

    for _ in range(4):
        log.log(logging.WARNING, "same", "%s: retry", "EC100:x")
        clock[0] += 1
    clock[0] += 10
    log.log(logging.WARNING, "same", "%s: retry", "EC100:x")

    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["EC100:x: retry", "EC100:x: retry (repeated 3 times since the last report)"]
