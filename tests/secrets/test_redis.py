"""Redis, shared by the cache, the broker, the long-poll and the tunnel push, stores no secret of the flow.

Only this test run's keys are read: those under its cache prefix and its
Celery queue name, since other runs may share the server.
"""

from __future__ import annotations

import pytest
import redis
from django.conf import settings

from tests.secrets.scanning import find_secrets

pytestmark = pytest.mark.e2e


def _value_text(client: redis.Redis, key: bytes) -> str:
    kind = client.type(key).decode()
    if kind == "string":
        values = [client.get(key) or b""]
    elif kind == "list":
        values = client.lrange(key, 0, -1)
    elif kind == "hash":
        values = [item for pair in client.hgetall(key).items() for item in pair]
    elif kind == "set":
        values = list(client.smembers(key))
    elif kind == "zset":
        values = client.zrange(key, 0, -1)
    else:
        values = []
    # Cached values are pickled, which keeps strings as their bytes.
    return "\n".join(value.decode("latin-1") for value in values)


def _masked(name: str, needles) -> str:
    """Return a key name fit for a failure message: any secret in it replaced."""
    for needle in needles:
        name = name.replace(needle.text, "<secret>")
    return name[:120]


def test_redis_holds_no_secret(secret_flow):
    client = redis.Redis.from_url(settings.REDIS_URL)
    patterns = [f"*{settings.CACHES['default']['KEY_PREFIX']}*", f"*{settings.CELERY_TASK_DEFAULT_QUEUE}*"]
    findings = []
    keys = 0
    try:
        for pattern in patterns:
            for key in client.scan_iter(match=pattern, count=1000):
                keys += 1
                where = f"Redis key {_masked(key.decode('latin-1'), secret_flow.registry.needles)}"
                findings += find_secrets(key.decode("latin-1"), secret_flow.registry.needles, where=where)
                findings += find_secrets(_value_text(client, key), secret_flow.registry.needles, where=where)
    finally:
        client.close()

    assert keys, "no key of this test run in Redis, so the search would prove nothing"
    assert not findings, "secrets found:\n" + "\n".join(findings)
