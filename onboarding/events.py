"""Waking long-polls when an onboard request changes state.

A state change publishes the request id on a Redis channel after its
transaction commits. Each web process keeps one subscription for all of its
waiting long-polls (:class:`OnboardEventHub`), so 10,000 waiting ECs cost one
Redis connection per process, no thread and no database connection.

A missed message costs latency, not correctness: a waiter re-reads the
database when woken or when its wait ends, and a lost Redis connection wakes
every waiter so each re-reads.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.db import connection, transaction

logger = logging.getLogger(__name__)

CHANNEL_PREFIX = "ztsp:onboard:"
_sync_client: redis.Redis | None = None


def channel_for(schema_name: str, request_id) -> str:
    return f"{CHANNEL_PREFIX}{schema_name}:{request_id}"


def _client() -> redis.Redis:
    global _sync_client
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
    return _sync_client


def publish_request_changed(request_id, *, schema_name: str | None = None) -> None:
    """Publish a state change of ``request_id`` once the current transaction commits."""
    publish_requests_changed([request_id], schema_name=schema_name)


class _PendingPublish:
    """An on-commit callback that publishes the changes of a transaction in one Redis round trip."""

    def __init__(self) -> None:
        self.channels: list[str] = []

    def __call__(self) -> None:
        try:
            pipeline = _client().pipeline(transaction=False)
            for channel in self.channels:
                pipeline.publish(channel, "changed")
            pipeline.execute()
        except redis.RedisError as error:
            # The waiters still read the change when their waits time out.
            logger.warning("Could not publish the changes of %d onboard requests: %s", len(self.channels), error)


def publish_requests_changed(request_ids, *, schema_name: str | None = None) -> None:
    """Publish a state change of each of ``request_ids`` once the current transaction commits.

    All changes published in one transaction, such as a bulk approval, go
    out in one Redis pipeline.
    """
    schema = schema_name or connection.schema_name
    channels = [channel_for(schema, request_id) for request_id in request_ids]
    if not channels:
        return
    if connection.in_atomic_block:
        savepoints = set(connection.savepoint_ids)
        # NOTE: like onboarding.tasks.queue_issuance, this reads Django 5.2's
        # connection.run_on_commit, a list of (savepoint ids, callback, robust)
        # tuples, to join the transaction's pending callback. Only a callback
        # registered under the same savepoints is joined, so a savepoint
        # rollback drops these channels with it.
        for pending_savepoints, callback, *_ in reversed(connection.run_on_commit):
            if isinstance(callback, _PendingPublish) and pending_savepoints == savepoints:
                callback.channels.extend(channels)
                return
    pending = _PendingPublish()
    pending.channels.extend(channels)
    transaction.on_commit(pending)


class OnboardEventHub:
    """One pattern subscription per process, fanning messages out to waiting coroutines."""

    def __init__(self, redis_url: str):
        self._redis_url = redis_url
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._listener: asyncio.Task | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        if self._listener is None or self._listener.done():
            self._subscribed = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(), name="onboard-event-hub")
        # Wait briefly so a change published right after this returns is seen.
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout=2)
        except TimeoutError:
            logger.warning("Onboard event subscription not ready after 2 s; waiters fall back to their timeout")

    def register(self, channel: str) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters[channel].add(event)
        return event

    def unregister(self, channel: str, event: asyncio.Event) -> None:
        waiters = self._waiters.get(channel)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiters[channel]

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            client = aioredis.Redis.from_url(self._redis_url)
            pubsub = client.pubsub()
            try:
                await pubsub.psubscribe(CHANNEL_PREFIX + "*")
                self._subscribed.set()
                delay = 0.5
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    channel = message["channel"].decode()
                    for event in self._waiters.get(channel, ()):
                        event.set()
            except asyncio.CancelledError:
                raise
            except (redis.RedisError, OSError) as error:
                logger.warning("Onboard event subscription lost (%s); reconnecting in %.1f s", error, delay)
                self._wake_all()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
            finally:
                try:
                    await pubsub.aclose()
                    await client.aclose()
                except (redis.RedisError, OSError):
                    pass
