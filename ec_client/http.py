"""HTTP plumbing for the agent: name overrides, backoff, JSON calls and quiet retry logs."""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

logger = logging.getLogger(__name__)

# Longest Retry-After the agent honors, in seconds, so that a bad header cannot
# park a device for days.
MAX_RETRY_AFTER = 3600.0


# ---------------------------------------------------------------- name overrides


@dataclass(frozen=True)
class ResolveRule:
    """One ``HOST:PORT:ADDRESS`` override. HOST may also be ``*.suffix`` or ``*``."""

    host: str
    port: int
    address: str

    def matches(self, host: str, port: int) -> bool:
        if port != self.port:
            return False
        host = host.lower().rstrip(".")
        if self.host == "*":
            return True
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host


def parse_resolve_rule(text: str) -> ResolveRule:
    """Parse a curl-style ``HOST:PORT:ADDRESS`` override, e.g. ``*.localhost:8000:127.0.0.1``.

    ADDRESS is an IPv4 or IPv6 literal, and an IPv6 one may be written in brackets.
    Raises ValueError naming the bad part.
    """
    host, separator, rest = text.partition(":")
    port_text, separator2, address = rest.partition(":")
    if not separator or not separator2 or not host or not address:
        raise ValueError(
            f"invalid resolve override {text!r}: expected HOST:PORT:ADDRESS, e.g. acme.localhost:8000:127.0.0.1"
        )
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise ValueError(f"invalid port {port_text!r} in resolve override {text!r}")
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"invalid address {address!r} in resolve override {text!r}: expected an IP literal") from None
    host = host.lower().rstrip(".")
    if "*" in host and host != "*" and not (host.startswith("*.") and "*" not in host[2:]):
        raise ValueError(
            f"invalid host {host!r} in resolve override {text!r}: "
            "a wildcard is allowed only as the first label, e.g. *.localhost"
        )
    return ResolveRule(host=host, port=port, address=address)


class ResolveOverrides:
    """Override rules in match order: exact hosts first, then wildcards, longest first."""

    def __init__(self, rules: list[ResolveRule] | None = None) -> None:
        rules = list(rules or [])
        exact = [rule for rule in rules if "*" not in rule.host]
        # Longer wildcard suffixes are more specific, so they are tried first.
        wildcards = sorted((rule for rule in rules if "*" in rule.host), key=lambda rule: -len(rule.host))
        self.rules = exact + wildcards

    @classmethod
    def parse(cls, texts: list[str] | tuple[str, ...]) -> ResolveOverrides:
        return cls([parse_resolve_rule(text) for text in texts])

    def lookup(self, host: str, port: int) -> str | None:
        """Return the override address for ``host:port``, or None if no rule matches."""
        for rule in self.rules:
            if rule.matches(host, port):
                return rule.address
        return None

    def __bool__(self) -> bool:
        return bool(self.rules)


class OverrideResolver(AbstractResolver):
    """aiohttp resolver that applies :class:`ResolveOverrides`, else the default resolver.

    Only name resolution changes, so aiohttp still sends the original name in
    the Host header and, for https, in SNI and the hostname check.
    """

    def __init__(self, overrides: ResolveOverrides) -> None:
        self._overrides = overrides
        self._fallback: AbstractResolver | None = None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self._overrides.lookup(host, port)
        if address is None:
            if self._fallback is None:
                # Created here because the default resolver binds the running loop.
                self._fallback = DefaultResolver()
            return await self._fallback.resolve(host, port, family)
        address_family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=address_family,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
        ]

    async def close(self) -> None:
        if self._fallback is not None:
            await self._fallback.close()


def make_connector(overrides: ResolveOverrides, limit: int) -> aiohttp.TCPConnector:
    """Create a connector that resolves through ``overrides`` and opens at most ``limit``
    connections at once; callers beyond the limit wait in FIFO order."""
    return aiohttp.TCPConnector(
        resolver=OverrideResolver(overrides),
        limit=limit,
        limit_per_host=0,
        ttl_dns_cache=60,
        enable_cleanup_closed=False,
    )


def make_client_ssl_context(ca_file: str | None) -> ssl.SSLContext | None:
    """Return the TLS context for https calls: system CAs plus ``ca_file``, or None for defaults."""
    if not ca_file:
        return None
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=ca_file)
    return context


# ---------------------------------------------------------------------- backoff


class Backoff:
    """Exponential backoff with full jitter: delay n is uniform in [0, min(cap, base * 2**n)].

    All delays are in seconds. ``rng`` is injectable so tests can check the bounds.
    """

    def __init__(self, cap: float, base: float = 1.0, rng: random.Random | None = None) -> None:
        if cap <= 0 or base <= 0:
            raise ValueError(f"backoff cap and base must be positive, got cap={cap} base={base}")
        self.cap = cap
        self.base = base
        self.attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(self.attempt, 62))
        self.attempt += 1
        return self._rng.uniform(0.0, ceiling)

    def max_delay(self) -> float:
        """Return a delay near the cap, uniform in [cap/2, cap], for errors that need a fix
        on the server side before a retry can succeed."""
        return self._rng.uniform(self.cap / 2, self.cap)

    def retry_after_delay(self, retry_after: float) -> float:
        """Return the server's Retry-After plus up to 10 % (at least 1 s) of jitter, so that
        devices given the same value do not come back in the same second."""
        retry_after = min(max(retry_after, 0.0), MAX_RETRY_AFTER)
        return retry_after + self._rng.uniform(0.0, max(1.0, retry_after * 0.1))

    def reset(self) -> None:
        self.attempt = 0


def parse_retry_after(value: str | None) -> float | None:
    """Return a Retry-After header (delta-seconds or HTTP-date) in seconds, or None if invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


# --------------------------------------------------------------- JSON over HTTP


@dataclass
class ApiResponse:
    """HTTP response with its JSON body. ``code`` and ``detail`` come from error bodies."""

    status: int
    body: dict[str, Any]
    retry_after: float | None = None

    @property
    def code(self) -> str:
        return str(self.body.get("code") or f"http_{self.status}")

    @property
    def detail(self) -> str:
        return str(self.body.get("detail") or "")


class TransportError(Exception):
    """The request failed before a usable HTTP response arrived (connect, TLS, timeout)."""


async def call_json(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    token: str,
    body: dict[str, Any] | None = None,
    read_timeout: float = 30.0,
    ssl_context: ssl.SSLContext | None = None,
) -> ApiResponse:
    """Send one request with ``Authorization: Bearer <token>`` and parse the JSON response.

    ``read_timeout`` (seconds) bounds the wait for the response, so a long-poll
    must pass more than its ``wait``. Waiting for a free connection in the
    connector pool is not bounded. A response whose body is not a JSON object
    (a proxy's HTML error page, say) keeps its status with ``code`` ``http_<status>``.
    Raises TransportError for network, TLS and timeout failures.
    """
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=15.0, sock_read=read_timeout)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    try:
        async with session.request(
            method,
            url,
            json=body,
            headers=headers,
            timeout=timeout,
            ssl=ssl_context if ssl_context is not None else True,
        ) as response:
            raw = await response.read()
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise TransportError(f"{method} {url} failed: {type(error).__name__}: {error}") from error

    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        snippet = raw[:200].decode("utf-8", "replace").strip()
        parsed = {"code": f"http_{status}", "detail": f"response is not a JSON object: {snippet!r}"}
    return ApiResponse(status=status, body=parsed, retry_after=retry_after)


# ------------------------------------------------------------- quiet retry logs


class RepeatLimitedLog:
    """Log a repeated retry error once per ``period`` seconds and count the rest.

    Errors are identified by ``key``. A different key is logged at once, so a
    change of error is never hidden. The next log of a key reports how many
    repeats were suppressed since its previous log.
    """

    def __init__(self, target: logging.Logger, period: float) -> None:
        self._logger = target
        self._period = period
        self._last_key: str | None = None
        self._last_time = 0.0
        self._suppressed = 0

    def log(self, level: int, key: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        if key == self._last_key and now - self._last_time < self._period:
            self._suppressed += 1
            return
        if key == self._last_key and self._suppressed:
            message += " (repeated %d times since the last report)"
            args = (*args, self._suppressed)
        self._logger.log(level, message, *args)
        self._last_key = key
        self._last_time = now
        self._suppressed = 0

    def clear(self) -> None:
        self._last_key = None
        self._suppressed = 0
