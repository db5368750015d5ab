"""Messages from Director processes to ECs, delivered down their management tunnels.

Only the tunnel gateway process has the tunnel connections, so a Celery task
or a web request cannot write to one. :func:`send_to_ec` publishes the
message on a Redis channel that every gateway subscribes to
(:class:`PushListener`). The gateway with the EC's live session writes the
message to it, and the other gateways drop it.

Delivery is at most once. An EC that is offline, or a gateway that is
reconnecting to Redis, misses the message, so a sender repeats what must
arrive: the renewal reminder runs every hour.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

import redis
import redis.asyncio as aioredis
from django.conf import settings

logger = logging.getLogger(__name__)

_sync_client: redis.Redis | None = None

# Callback of a gateway: (tenant schema, Product ID, message) → whether a live session took it.
Deliver = Callable[[str, str, dict], Awaitable[bool]]


def channel_name() -> str:
    """Return this deployment's push channel.

    The Celery queue name is unique per deployment and per test run, so two
    deployments that share one Redis never forward each other's messages.
    """
    return f"ztsp:tunnel-push:{settings.CELERY_TASK_DEFAULT_QUEUE}"


def _client() -> redis.Redis:
    global _sync_client
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
    return _sync_client


def encode_push(schema_name: str, product_id: str, message: dict) -> str:
    """Return the channel payload for ``message``, raising ValueError when the tunnel cannot carry it."""
    from gateway.server import MAX_LINE_BYTES

    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ValueError(f"invalid push message {message!r}: expected a JSON object with a string 'type'")
    line_bytes = len(json.dumps(message, separators=(",", ":")).encode()) + 1
    if line_bytes > MAX_LINE_BYTES:
        raise ValueError(f"push message of type {message['type']!r} is {line_bytes} bytes; "
                         f"the tunnel carries at most {MAX_LINE_BYTES} bytes per message")
    return json.dumps({"schema": schema_name, "product_id": product_id, "message": message},
                      separators=(",", ":"))


def decode_push(payload: bytes | str) -> tuple[str, str, dict]:
    """Return (tenant schema, Product ID, message) from a channel payload, raising ValueError when invalid."""
    document = json.loads(payload)
    if not isinstance(document, dict):
        raise ValueError("push payload is not a JSON object")
    schema_name = document.get("schema")
    product_id = document.get("product_id")
    message = document.get("message")
    if not isinstance(schema_name, str) or not isinstance(product_id, str):
        raise ValueError("push payload needs string 'schema' and 'product_id' fields")
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ValueError("push payload needs a 'message' object with a string 'type'")
    return schema_name, product_id, message


def send_to_ec(schema_name: str, product_id: str, message: dict) -> int:
    """Publish ``message`` for EC ``product_id`` of tenant ``schema_name``; return how many gateways received it.

    A gateway receiving it does not mean that the EC is connected to it, and 0
    means that no gateway is running. The message is sent at once, so a caller
    inside a transaction sends it from ``transaction.on_commit``. Raises
    ValueError for a message the tunnel cannot carry and ``redis.RedisError``
    when Redis cannot be reached.
    """
    payload = encode_push(schema_name, product_id, message)
    return _client().publish(channel_name(), payload)


class PushListener:
    """The gateway's subscription to the push channel; it reconnects to Redis until cancelled."""

    def __init__(self, redis_url: str, deliver: Deliver, channel: str | None = None):
        self._redis_url = redis_url
        self._deliver = deliver
        self.channel = channel or channel_name()
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        delay = 0.5
        while True:
            client = aioredis.Redis.from_url(self._redis_url)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                logger.info("Subscribed to push channel %s", self.channel)
                delay = 0.5
                async for item in pubsub.listen():
                    if item.get("type") == "message":
                        await self._forward(item["data"])
            except asyncio.CancelledError:
                raise
            except (redis.RedisError, OSError) as error:
                self.subscribed.clear()
                logger.warning("Push channel subscription lost (%s); messages sent meanwhile are missed; "
                               "reconnecting in %.1f s", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
            finally:
                try:
                    await pubsub.aclose()
                    await client.aclose()
                except (redis.RedisError, OSError):
                    pass

    async def _forward(self, payload: bytes) -> None:
        try:
            schema_name, product_id, message = decode_push(payload)
        except ValueError as error:
            logger.warning("Dropped an invalid push message: %s", error)
            return
        try:
            await self._deliver(schema_name, product_id, message)
        except Exception:
            # One failed delivery must not end the subscription of all ECs.
            logger.exception("Delivering a %s message to %s in %s failed", message["type"], product_id, schema_name)
