"""The simulated Edge Controller firmware: lookup, onboarding, certificate and tunnel.

The agent moves through the phases ``new`` → ``looked_up`` → ``onboard_requested``
→ ``issued`` → ``tunnel_up``, or stops at ``rejected`` or ``failed``. Each step
is saved to ``state.json`` so a restarted agent resumes where it stopped.

With the tunnel up, the agent renews its certificate over the tunnel when the
Director sends ``renew_due`` or when less than ``renew_fraction`` of the
certificate's lifetime is left. Then it reconnects with the new certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ec_client import __version__
from ec_client.http import (
    ApiResponse,
    Backoff,
    RepeatLimitedLog,
    ResolveOverrides,
    TransportError,
    call_json,
    make_client_ssl_context,
    make_connector,
)
from ec_client.keys import (
    KEY_TYPES,
    CertificateRejected,
    PrivateKey,
    VerifiedCertificate,
    build_csr,
    create_csr,
    create_key,
    describe_key,
    generate_key,
    load_or_create_csr,
    load_or_create_key,
    private_key_pem,
    verify_certificate,
)
from ec_client.proof import key_sha256, sign_with_key, sign_with_secret
from ec_client.state import (
    CA_CHAIN_FILE,
    CERT_FILE,
    CLIENT_CHAIN_FILE,
    KEY_FILE,
    PHASE_FAILED,
    PHASE_REJECTED,
    AgentState,
    DeviceConfig,
    StateError,
    atomic_write,
    finish_pending_replace,
    load_device,
    load_state,
    replace_files,
    save_state,
)
from ec_client.tunnel import (
    CertificateExpired,
    CertificateRevoked,
    TunnelClient,
    TunnelClosed,
    client_chain_pem,
    write_client_chain,
)

logger = logging.getLogger(__name__)

# The Director caps a long-poll at 60 s.
MAX_WAIT_SECONDS = 60
# Extra read time, in seconds, beyond the long-poll wait before the HTTP client
# gives up, so the client never times out before the server responds.
POLL_READ_MARGIN = 15.0
# Minimum seconds between two polls, in case a server returns "pending"
# at once. Without it the agent would poll in a tight loop.
MIN_POLL_INTERVAL = 1.0
# Lookup errors that need a fix on the server side (vendor data, keys), so the
# agent retries them at the maximum backoff.
LOOKUP_PERMANENT_ERRORS = frozenset({400, 401, 403, 404})
# Seconds to wait for the reply to a renew request; the gateway signs in well under a second.
RENEW_REPLY_TIMEOUT = 60.0


@dataclass
class AgentOptions:
    """Settings of one agent run, shared by all agents of a fleet. Times are in seconds."""

    # Curl-style HOST:PORT:ADDRESS overrides, e.g. "*.localhost:8000:127.0.0.1".
    resolve: tuple[str, ...] = ()
    backoff_max: float = 60.0
    backoff_base: float = 1.0
    # Long-poll wait sent to the Director, at most 60.
    wait_seconds: int = 30
    # Heartbeat period to use instead of the one the tunnel server sends.
    heartbeat_interval: float | None = None
    # Type of a newly generated key: "ec" (P-256), "rsa2048" or "rsa3072".
    key_type: str = "ec"
    # Seconds after which the run stops, whatever the phase. None means no limit.
    deadline_seconds: float | None = None
    # Stop hold_seconds after the tunnel first comes up instead of keeping it open.
    exit_when_connected: bool = False
    hold_seconds: float = 0.0
    # After a rejection or a rejected certificate, wait the maximum backoff and
    # start over instead of stopping.
    keep_retrying: bool = False
    # Extra CA bundle (PEM file) to trust for an https Provision Server or Director.
    ca_file: str | None = None
    # Log every poll and heartbeat at INFO instead of DEBUG.
    verbose: bool = False
    # Renew the certificate when less than this fraction of its lifetime is
    # left, above 0 and at most 1. At 1 the agent renews at every tunnel start.
    renew_fraction: float = 1 / 3
    # How often the remaining lifetime is checked, and the longest wait before
    # a failed renewal is tried again.
    renew_check_seconds: float = 3600.0
    # Called with (Product ID, step, HTTP status, Retry-After in seconds or None) for every HTTP response the
    # agent receives, from the agent's event loop thread; a fleet report or a test counts statuses with it.
    on_response: Callable[[str, str, int, float | None], None] | None = field(default=None, repr=False,
                                                                               compare=False)
    overrides: ResolveOverrides = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.resolve = tuple(self.resolve)
        self.overrides = ResolveOverrides.parse(self.resolve)
        if self.key_type not in KEY_TYPES:
            raise ValueError(f"invalid key type {self.key_type!r}: expected one of {', '.join(KEY_TYPES)}")
        if self.backoff_max <= 0 or self.backoff_base <= 0:
            raise ValueError(
                f"invalid backoff: backoff_max={self.backoff_max} and backoff_base={self.backoff_base} must be positive"
            )
        if not 0 <= self.wait_seconds <= MAX_WAIT_SECONDS:
            raise ValueError(f"invalid wait_seconds {self.wait_seconds}: expected 0 to {MAX_WAIT_SECONDS}")
        if self.heartbeat_interval is not None and self.heartbeat_interval <= 0:
            raise ValueError(f"invalid heartbeat_interval {self.heartbeat_interval}: must be > 0")
        if self.deadline_seconds is not None and self.deadline_seconds <= 0:
            raise ValueError(f"invalid deadline_seconds {self.deadline_seconds}: must be > 0")
        if self.hold_seconds < 0:
            raise ValueError(f"invalid hold_seconds {self.hold_seconds}: must be >= 0")
        if not 0 < self.renew_fraction <= 1:
            raise ValueError(f"invalid renew_fraction {self.renew_fraction}: expected more than 0 and at most 1")
        if self.renew_check_seconds <= 0:
            raise ValueError(f"invalid renew_check_seconds {self.renew_check_seconds}: must be > 0")


@dataclass
class AgentResult:
    """Outcome of one agent run. ``seconds_to_phase`` counts from the start of this run."""

    product_id: str | None
    state_dir: str
    phase: str
    director_url: str | None = None
    request_id: str | None = None
    cert_serial: str | None = None
    seconds_to_phase: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    # Seconds from the start of the fleet to the start of this agent (0 outside a fleet).
    start_offset: float = 0.0

    @property
    def ok(self) -> bool:
        return self.phase == "tunnel_up"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def run_agent(
    state_dir: str | Path,
    options: AgentOptions,
    *,
    connector: aiohttp.BaseConnector | None = None,
    connect_slots: asyncio.Semaphore | None = None,
    stop: asyncio.Event | None = None,
) -> AgentResult:
    """Run the Edge Controller in ``state_dir`` until it stops and return the outcome.

    The run ends at ``rejected`` or ``failed``, ``hold_seconds`` after the tunnel
    comes up if ``exit_when_connected`` is set, at the deadline, or when ``stop``
    is set. Otherwise it runs for ever. A fleet passes a shared ``connector``
    (it is not closed here) and ``connect_slots`` to bound concurrent tunnel
    handshakes. Errors end up in ``AgentResult.error``. Only cancellation raises.
    """
    agent = Agent(Path(state_dir), options, connector=connector, connect_slots=connect_slots)
    return await agent.run(stop)


class Agent:
    """One Edge Controller. Call :func:`run_agent` rather than using this class directly."""

    def __init__(
        self,
        state_dir: Path,
        options: AgentOptions,
        *,
        connector: aiohttp.BaseConnector | None = None,
        connect_slots: asyncio.Semaphore | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.options = options
        self.shared_connector = connector
        self.connect_slots = connect_slots
        self.device: DeviceConfig | None = None
        self.state = AgentState()
        self.key: PrivateKey | None = None
        self.certificate: VerifiedCertificate | None = None
        # Serial of the certificate last reported to the Provision Server as onboarded.
        self._reported_serial: str | None = None
        self._report_task: asyncio.Task[None] | None = None
        # Current phase of this run, starting at the phase resumed from state.json.
        self.phase = "new"
        self.seconds_to_phase: dict[str, float] = {}
        self.finished = False
        self.backoff = Backoff(options.backoff_max, options.backoff_base)
        self.retry_log = RepeatLimitedLog(logger, options.backoff_max)
        self.session: aiohttp.ClientSession | None = None
        self.http_ssl = make_client_ssl_context(options.ca_file)
        self._started = 0.0
        # Set to make the renewal task look at the certificate now.
        self._renewal_wakeup = asyncio.Event()
        # Reason the Director gave in renew_due, kept until a renewal succeeds.
        self._renewal_requested: str | None = None

    @property
    def product_id(self) -> str:
        return self.device.product_id if self.device else self.state_dir.name

    # ---------------------------------------------------------------- run loop

    async def run(self, stop: asyncio.Event | None) -> AgentResult:
        self._started = time.monotonic()
        try:
            self.device = load_device(self.state_dir)
        except StateError as error:
            logger.error("%s: cannot start the agent: %s", self.state_dir, error)
            return self._result(PHASE_FAILED, str(error))

        logger.info("%s: agent starting from %s", self.product_id, self.state_dir)
        try:
            return await self._supervise(stop)
        finally:
            await self._close_session()

    async def _supervise(self, stop: asyncio.Event | None) -> AgentResult:
        """Run the phases until they finish, the deadline passes or ``stop`` is set."""
        inner = asyncio.create_task(self._run_phases(), name=f"agent {self.product_id}")
        waiters: set[asyncio.Future[Any]] = {inner}
        stop_waiter = asyncio.create_task(stop.wait()) if stop is not None else None
        if stop_waiter is not None:
            waiters.add(stop_waiter)

        try:
            done, _ = await asyncio.wait(
                waiters, timeout=self.options.deadline_seconds, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            await self._cancel(inner)
            raise
        finally:
            if stop_waiter is not None:
                stop_waiter.cancel()

        if inner not in done:
            await self._cancel(inner)
            return self._end_early(stopped=stop is not None and stop.is_set())
        error = inner.exception()
        if error is not None:
            logger.error(
                "%s: agent failed in phase %s: %s",
                self.product_id,
                self.phase,
                error,
                exc_info=error,
            )
            return self._result(PHASE_FAILED, f"{type(error).__name__}: {error}")
        return self._result(self.phase, None if self.phase == "tunnel_up" else self.state.last_error)

    def _end_early(self, stopped: bool) -> AgentResult:
        if self.phase == "tunnel_up":
            logger.info("%s: agent stopped with the tunnel up", self.product_id)
            return self._result(self.phase, None)
        reason = "stopped" if stopped else f"deadline of {self.options.deadline_seconds:g} s reached"
        error = f"{reason} in phase {self.phase}"
        if self.state.last_error:
            error += f"; last error: {self.state.last_error}"
        logger.warning("%s: %s", self.product_id, error)
        return self._result(self.phase, error)

    @staticmethod
    async def _cancel(task: asyncio.Task[Any]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    def _result(self, phase: str, error: str | None) -> AgentResult:
        return AgentResult(
            product_id=self.device.product_id if self.device else None,
            state_dir=str(self.state_dir),
            phase=phase,
            director_url=self.state.director_url,
            request_id=self.state.request_id,
            cert_serial=self.certificate.serial_hex if self.certificate else None,
            seconds_to_phase=dict(self.seconds_to_phase),
            error=error,
        )

    async def _run_phases(self) -> None:
        await self._prepare()
        while not self.finished:
            if self.certificate is not None and self.state.tunnel_host and self.state.tunnel_port:
                await self._run_tunnel()
            elif self.state.director_url and self.state.request_id and self.state.poll_token:
                await self._poll()
            elif self.state.director_url and self.state.tenant_access_key:
                await self._onboard()
            else:
                await self._lookup()

    async def _prepare(self) -> None:
        """Load or create the key, load state.json and pick the phase to resume from."""
        completed = await asyncio.to_thread(finish_pending_replace, self.state_dir)
        if completed:
            logger.info("%s: finished storing %s of an interrupted renewal", self.product_id, ", ".join(completed))
        self.key, created = await asyncio.to_thread(load_or_create_key, self.state_dir, self.options.key_type)
        logger.info(
            "%s: %s %s key",
            self.product_id,
            "generated a new" if created else "reusing the stored",
            describe_key(self.key),
        )
        self.state = load_state(self.state_dir)
        self.certificate = self._load_stored_certificate()

        if self.certificate is not None and self.state.tunnel_host and self.state.tunnel_port:
            self.phase = "issued"
        elif self.state.director_url and self.state.request_id and self.state.poll_token:
            self.phase = "onboard_requested"
        elif self.state.director_url and self.state.tenant_access_key:
            self.phase = "looked_up"
        else:
            self.phase = "new"
        if self.state.phase != self.phase:
            self.state.phase = self.phase
            save_state(self.state_dir, self.state)
        logger.info("%s: resuming at phase %s", self.product_id, self.phase)

    def _load_stored_certificate(self) -> VerifiedCertificate | None:
        try:
            certificate_pem = (self.state_dir / CERT_FILE).read_bytes()
            chain_pem = (self.state_dir / CA_CHAIN_FILE).read_bytes()
        except FileNotFoundError:
            return None
        try:
            certificate = verify_certificate(certificate_pem, chain_pem, self.key, self.product_id)
        except CertificateRejected as error:
            logger.warning(
                "%s: stored certificate is not usable (%s); onboarding again",
                self.product_id,
                error,
            )
            # A new CSR makes the Director open a new request instead of
            # returning the old certificate again.
            # NOTE: RSA PKCS#1 v1.5 signatures are deterministic, so a new RSA
            # CSR is byte-identical to the old one. A Director that matches
            # requests on the CSR bytes then returns the old request.
            create_csr(self.state_dir, self.key, self.product_id)
            self.state.forget_request()
            return None
        logger.info(
            "%s: stored certificate serial %s is valid until %s",
            self.product_id,
            certificate.serial_hex,
            certificate.not_after,
        )
        return certificate

    def _reach(self, phase: str) -> None:
        self.phase = phase
        self.state.reach(phase)
        self.state.last_error = None
        self.seconds_to_phase[phase] = round(time.monotonic() - self._started, 3)
        save_state(self.state_dir, self.state)
        self.backoff.reset()
        self.retry_log.clear()

    def _record_error(self, error: str) -> None:
        if error != self.state.last_error:
            self.state.last_error = error
            save_state(self.state_dir, self.state)

    # ------------------------------------------------------------------- HTTP

    async def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            connector = self.shared_connector or make_connector(self.options.overrides, limit=4)
            self.session = aiohttp.ClientSession(
                connector=connector,
                connector_owner=self.shared_connector is None,
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": f"ztsp-ec-agent/{__version__}"},
            )
        return self.session

    async def _close_session(self) -> None:
        if self._report_task is not None:
            # Give an onboarded report in flight a moment to finish.
            await asyncio.wait({self._report_task}, timeout=5)
            await self._cancel(self._report_task)
            self._report_task = None
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def _call(
        self,
        step: str,
        method: str,
        url: str,
        *,
        token: str,
        body: dict[str, Any] | None = None,
        read_timeout: float = 30.0,
    ) -> ApiResponse | None:
        """Send one request. On a transport failure, log it, back off and return None."""
        session = await self._session()
        try:
            response = await call_json(
                session,
                method,
                url,
                token=token,
                body=body,
                read_timeout=read_timeout,
                ssl_context=self.http_ssl,
            )
        except TransportError as error:
            delay = self.backoff.next_delay()
            self._record_error(f"{step}: {error}")
            self.retry_log.log(
                logging.WARNING,
                f"{step} transport {type(error.__cause__).__name__}",
                "%s: %s: %s; retrying in %.1f s",
                self.product_id,
                step,
                error,
                delay,
            )
            await asyncio.sleep(delay)
            return None
        self._report_response(step, response)
        return response

    def _report_response(self, step: str, response: ApiResponse) -> None:
        if response.status >= 500:
            logger.debug("%s: %s returned HTTP %d (Retry-After %s)", self.product_id, step, response.status,
                         response.retry_after)
        if self.options.on_response is not None:
            self.options.on_response(self.product_id, step, response.status, response.retry_after)

    async def _retry_after_error(
        self, step: str, response: ApiResponse, permanent: frozenset[int] = frozenset()
    ) -> None:
        """Log an error response and sleep as its status requires before the next attempt.

        409, 429 and 5xx honor Retry-After (a 503 carries it while a database
        or broker of the server is down), statuses in ``permanent`` wait near
        the maximum backoff, and the rest (5xx without Retry-After, unexpected
        statuses) back off exponentially.
        """
        status = response.status
        level = logging.WARNING
        if (status in (409, 429) or status >= 500) and response.retry_after is not None:
            delay = self.backoff.retry_after_delay(response.retry_after)
            level = logging.INFO if status < 500 else logging.WARNING
        elif status in permanent:
            delay = self.backoff.max_delay()
            level = logging.ERROR
        else:
            delay = self.backoff.next_delay()

        self._record_error(f"{step}: HTTP {status} {response.code}: {response.detail}")
        self.retry_log.log(
            level,
            f"{step} {status} {response.code}",
            "%s: %s returned HTTP %d %s: %s; retrying in %.1f s",
            self.product_id,
            step,
            status,
            response.code,
            response.detail,
            delay,
        )
        await asyncio.sleep(delay)

    async def _retry_invalid_response(self, step: str, problem: str) -> None:
        delay = self.backoff.max_delay()
        self._record_error(f"{step}: invalid response: {problem}")
        self.retry_log.log(
            logging.ERROR,
            f"{step} invalid {problem}",
            "%s: %s returned an invalid response (%s); retrying in %.1f s",
            self.product_id,
            step,
            problem,
            delay,
        )
        await asyncio.sleep(delay)

    # ----------------------------------------------------------------- phases

    async def _lookup(self) -> None:
        device = self.device
        body: dict[str, Any] = {"product_id": device.product_id, "facts": device.facts}
        response = await self._call(
            "lookup", "POST", f"{device.provision_url}/api/v1/ztp/lookup", token=device.access_key, body=body
        )
        if response is not None and self._proof_requested(response):
            # One more round trip at once: the challenge expires in minutes.
            enroll_key = key_sha256(self.key.public_key())
            body["proof"] = {"challenge": response.body["challenge"], "key_sha256": enroll_key,
                             "signature": self._sign_challenge(response.body["challenge"], enroll_key)}
            response = await self._call(
                "lookup", "POST", f"{device.provision_url}/api/v1/ztp/lookup", token=device.access_key, body=body
            )
        if response is None:
            return
        if not 200 <= response.status < 300:
            await self._retry_after_error("lookup", response, LOOKUP_PERMANENT_ERRORS)
            return

        director_url = response.body.get("director_url")
        tenant_key = response.body.get("access_key")
        returned_id = response.body.get("product_id", device.product_id)
        if not isinstance(director_url, str) or not director_url.startswith(("http://", "https://")):
            await self._retry_invalid_response("lookup", f"director_url {director_url!r}")
            return
        if not isinstance(tenant_key, str) or not tenant_key:
            await self._retry_invalid_response("lookup", "missing access_key")
            return
        if returned_id != device.product_id:
            await self._retry_invalid_response("lookup", f"product_id {returned_id!r}")
            return

        self.state.director_url = director_url.rstrip("/")
        self.state.tenant_access_key = tenant_key
        lookup_proof = response.body.get("lookup_proof")
        self.state.lookup_proof = lookup_proof if isinstance(lookup_proof, str) and lookup_proof else None
        self.state.forget_request()
        self._reach("looked_up")
        logger.info("%s: looked up, Director is %s", self.product_id, self.state.director_url)

    def _proof_requested(self, response: ApiResponse) -> bool:
        """Return whether a lookup response requests a device proof that this EC can sign."""
        return (
            response.status == 401
            and response.code.startswith("device_proof_")
            and isinstance(response.body.get("challenge"), str)
            and self.device.credential is not None
        )

    def _sign_challenge(self, challenge: str, enroll_key: str) -> str:
        credential = self.device.credential or {}
        if credential.get("type") == "secret":
            return sign_with_secret(credential["secret"].encode(), self.product_id, challenge, enroll_key)
        key = load_pem_private_key(credential["private_key_pem"].encode(), password=None)
        return sign_with_key(key, self.product_id, challenge, enroll_key)

    async def _onboard(self) -> None:
        if self.state.lookup_proof_stale:
            # Without a proof for the current key the request would be flagged, so prove it at a new lookup first.
            logger.info("%s: the lookup proof named an older key; looking up again", self.product_id)
            self.state.forget_director()
            save_state(self.state_dir, self.state)
            return
        csr_pem = await asyncio.to_thread(load_or_create_csr, self.state_dir, self.key, self.product_id)
        response = await self._call(
            "onboard",
            "POST",
            f"{self.state.director_url}/api/v1/onboard",
            token=self.state.tenant_access_key,
            # The Director cannot see ZTP lookups, so the EC sends the time of its
            # last successful lookup, for the admin's timeline.
            body={"product_id": self.product_id, "csr": csr_pem,
                  "facts": {**self.device.facts, **self._lookup_fact()},
                  **({"lookup_proof": self.state.lookup_proof} if self.state.lookup_proof else {})},
        )
        if response is None:
            return
        if response.status in (401, 403, 404):
            # The tenant key or the mapping may have changed, so look up again.
            await self._retry_after_error("onboard", response)
            logger.warning(
                "%s: Director %s returned %d to onboarding; looking up the Director again",
                self.product_id,
                self.state.director_url,
                response.status,
            )
            self.state.forget_director()
            save_state(self.state_dir, self.state)
            return
        if not 200 <= response.status < 300:
            await self._retry_after_error("onboard", response, frozenset({400}))
            return

        request_id = response.body.get("request_id")
        poll_token = response.body.get("poll_token")
        if not isinstance(request_id, str | int) or isinstance(request_id, bool) or not request_id:
            await self._retry_invalid_response("onboard", f"request_id {request_id!r}")
            return
        if not isinstance(poll_token, str) or not poll_token:
            await self._retry_invalid_response("onboard", "missing poll_token")
            return

        self.state.request_id = str(request_id)
        self.state.poll_token = poll_token
        self._reach("onboard_requested")
        logger.info(
            "%s: onboarding request %s is %s",
            self.product_id,
            self.state.request_id,
            response.body.get("status", "pending"),
        )

    async def _poll(self) -> None:
        wait = self.options.wait_seconds
        url = f"{self.state.director_url}/api/v1/onboard/{quote(self.state.request_id, safe='')}?wait={wait}"
        started = time.monotonic()
        response = await self._call(
            "poll",
            "GET",
            url,
            token=self.state.poll_token,
            read_timeout=wait + POLL_READ_MARGIN,
        )
        if response is None:
            return
        if response.status in (401, 403, 404):
            # The request is gone or its token is no longer valid, so onboard again.
            # The Director returns the same request if it still exists.
            logger.warning(
                "%s: poll of request %s returned HTTP %d %s; requesting onboarding again",
                self.product_id,
                self.state.request_id,
                response.status,
                response.code,
            )
            self._record_error(f"poll: HTTP {response.status} {response.code}: {response.detail}")
            self.state.forget_request()
            save_state(self.state_dir, self.state)
            await asyncio.sleep(self.backoff.next_delay())
            return
        if not 200 <= response.status < 300:
            await self._retry_after_error("poll", response)
            return

        status = response.body.get("status")
        if status in ("pending", "approved"):
            logger.log(
                logging.INFO if self.options.verbose else logging.DEBUG,
                "%s: request %s is %s",
                self.product_id,
                self.state.request_id,
                status,
            )
            self.backoff.reset()
            elapsed = time.monotonic() - started
            if elapsed < MIN_POLL_INTERVAL:
                await asyncio.sleep(MIN_POLL_INTERVAL - elapsed)
        elif status == "rejected":
            await self._handle_rejected(response)
        elif status == "issued":
            await self._handle_issued(response)
        else:
            await self._retry_invalid_response("poll", f"status {status!r}")

    async def _handle_rejected(self, response: ApiResponse) -> None:
        reason = response.body.get("detail") or response.body.get("reason") or "no reason given"
        error = f"onboarding request {self.state.request_id} rejected: {reason}"
        logger.error("%s: %s", self.product_id, error)
        if self.options.keep_retrying:
            self._record_error(error)
            self.state.forget_request()
            save_state(self.state_dir, self.state)
            # A new CSR makes the next onboarding a new request, not the rejected one.
            await asyncio.to_thread(create_csr, self.state_dir, self.key, self.product_id)
            await asyncio.sleep(self.backoff.max_delay())
            return
        self._reach(PHASE_REJECTED)
        self.state.last_error = error
        save_state(self.state_dir, self.state)
        self.finished = True

    async def _handle_issued(self, response: ApiResponse) -> None:
        certificate_pem = response.body.get("certificate")
        chain_pem = response.body.get("ca_chain")
        tunnel = response.body.get("tunnel")
        if not isinstance(certificate_pem, str) or not isinstance(chain_pem, str):
            await self._retry_invalid_response("poll", "issued without certificate or ca_chain")
            return
        if not isinstance(tunnel, dict):
            await self._retry_invalid_response("poll", "issued without tunnel")
            return
        host = tunnel.get("host")
        port = tunnel.get("port")
        if not isinstance(host, str) or not host:
            await self._retry_invalid_response("poll", f"tunnel host {host!r}")
            return
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            await self._retry_invalid_response("poll", f"tunnel port {port!r}")
            return

        try:
            certificate = verify_certificate(certificate_pem, chain_pem, self.key, self.product_id)
        except CertificateRejected as error:
            await self._reject_certificate(str(error))
            return

        atomic_write(self.state_dir / CERT_FILE, certificate_pem)
        atomic_write(self.state_dir / CA_CHAIN_FILE, chain_pem)
        write_client_chain(self.state_dir)
        self.certificate = certificate
        self.state.tunnel_host = host
        self.state.tunnel_port = port
        self._reach("issued")
        logger.info(
            "%s: certificate serial %s issued, valid until %s; tunnel at %s:%d",
            self.product_id,
            certificate.serial_hex,
            certificate.not_after,
            host,
            port,
        )

    async def _reject_certificate(self, reason: str) -> None:
        error = f"rejected the issued certificate: {reason}"
        logger.error("%s: %s", self.product_id, error)
        if self.options.keep_retrying:
            # The Director may hand out a good certificate after a fix, and the
            # lookup may point elsewhere by then.
            self._record_error(error)
            self.state.forget_director()
            save_state(self.state_dir, self.state)
            await asyncio.sleep(self.backoff.max_delay())
            return
        self.phase = PHASE_FAILED
        self.state.phase = PHASE_FAILED
        self.state.last_error = error
        save_state(self.state_dir, self.state)
        self.finished = True

    async def _run_tunnel(self) -> None:
        client = TunnelClient(
            state_dir=self.state_dir,
            product_id=self.product_id,
            firmware=str(self.device.facts.get("firmware", "unknown")),
            host=self.state.tunnel_host,
            port=self.state.tunnel_port,
            overrides=self.options.overrides,
            backoff=self.backoff,
            heartbeat_override=self.options.heartbeat_interval,
            certificate_not_after=self.certificate.not_after,
            on_connected=self._on_tunnel_up,
            on_disconnected=lambda reason: self._record_error(f"tunnel: {reason}"),
            on_renew_due=self._on_renew_due,
            connect_slots=self.connect_slots,
            verbose=self.options.verbose,
        )
        tunnel = asyncio.create_task(client.run_forever(), name=f"tunnel {self.product_id}")
        renewal = asyncio.create_task(self._renew_when_due(client), name=f"renewal {self.product_id}")
        try:
            if self.options.exit_when_connected:
                await self._hold_then_stop(client, tunnel)
            else:
                await tunnel
        except (CertificateExpired, CertificateRevoked) as error:
            logger.warning("%s: %s; onboarding again", self.product_id, error)
            self._record_error(f"tunnel: {error}")
            self.certificate = None
            self.state.forget_request()
            if isinstance(error, CertificateRevoked):
                # A revocation may mean the key leaked. A new key also keeps
                # the new CSR apart from the revoked certificate's request,
                # which a CSR signed again with the same RSA key would repeat.
                self.key = await asyncio.to_thread(create_key, self.state_dir, self.options.key_type)
                logger.info("%s: generated a new %s key", self.product_id, describe_key(self.key))
            await asyncio.to_thread(create_csr, self.state_dir, self.key, self.product_id)
            self.phase = "looked_up"
            self.state.phase = "looked_up"
            save_state(self.state_dir, self.state)
        finally:
            await self._cancel(renewal)
            await self._cancel(tunnel)

    # ---------------------------------------------------------------- renewal

    def _on_renew_due(self, message: dict[str, Any]) -> None:
        self._renewal_requested = str(message.get("reason") or "requested by the Director")
        self._renewal_wakeup.set()

    def _seconds_until_renewal(self) -> float:
        """Return the seconds until less than ``renew_fraction`` of the certificate's lifetime is left, or 0."""
        leaf = self.certificate.leaf
        lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
        renew_at = leaf.not_valid_after_utc - lifetime * self.options.renew_fraction
        return max((renew_at - datetime.now(UTC)).total_seconds(), 0.0)

    async def _renew_when_due(self, client: TunnelClient) -> None:
        """Renew the certificate whenever it is due and the tunnel is up; runs as long as the tunnel task."""
        retry = Backoff(self.options.renew_check_seconds, self.options.backoff_base)
        # Monotonic time before which a failed renewal is not tried again.
        retry_at = 0.0
        while True:
            await client.connected.wait()
            self._renewal_wakeup.clear()
            wait = min(self._seconds_until_renewal(), self.options.renew_check_seconds)
            reason = self._renewal_requested
            if reason is None and wait == 0:
                reason = f"less than {self.options.renew_fraction:.0%} of its lifetime left"
            if reason is not None and time.monotonic() < retry_at:
                wait = retry_at - time.monotonic()
            elif reason is not None:
                try:
                    retry_after = await self._renew_certificate(client, reason)
                except Exception as error:
                    logger.exception("%s: certificate renewal failed", self.product_id)
                    self._record_error(f"renewal: {type(error).__name__}: {error}")
                    retry_after = 0.0
                if retry_after is None:
                    self._renewal_requested = None
                    retry.reset()
                    retry_at = 0.0
                    continue
                wait = max(retry.next_delay(), retry_after)
                retry_at = time.monotonic() + wait
                logger.info("%s: trying the renewal again in %.1f s", self.product_id, wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._renewal_wakeup.wait(), timeout=wait)

    async def _renew_certificate(self, client: TunnelClient, reason: str) -> float | None:
        """Renew over the tunnel with a new key; return None when renewed, else the minimum seconds before a retry.

        On any failure the stored key and certificate stay as they are.
        """
        old_serial = self.certificate.serial_hex
        # A new key for every renewal. Besides retiring the old key, it makes
        # each renewal CSR distinct, which re-signing with one RSA key is not.
        key = await asyncio.to_thread(generate_key, self.options.key_type)
        csr_pem = build_csr(key, self.product_id)
        logger.info("%s: renewing certificate serial %s (%s) with a new %s key", self.product_id, old_serial, reason,
                    describe_key(key))
        try:
            reply = await client.request_renewal(csr_pem, RENEW_REPLY_TIMEOUT)
        except TunnelClosed as error:
            return self._renewal_failed(f"renewal of certificate serial {old_serial} interrupted: {error}")
        if reply.get("type") == "error":
            retry_after = reply.get("retry_after")
            if isinstance(retry_after, bool) or not isinstance(retry_after, int | float):
                retry_after = 0.0
            return self._renewal_failed(
                f"renewal of certificate serial {old_serial} rejected: {reply.get('code')}: {reply.get('detail')}",
                float(retry_after),
            )

        certificate_pem = reply.get("certificate")
        chain_pem = reply.get("ca_chain")
        if reply.get("type") != "renewed" or not isinstance(certificate_pem, str) or not isinstance(chain_pem, str):
            return self._renewal_failed(f"invalid renew reply of type {reply.get('type')!r}: expected a renewed "
                                        "message with certificate and ca_chain")
        # NOTE: the gateway revoked the old certificate when it issued this
        # one, so a renewed certificate that fails these checks leaves the EC
        # to onboard again once the tunnel drops.
        try:
            certificate = verify_certificate(certificate_pem, chain_pem, key, self.product_id)
        except CertificateRejected as error:
            return self._renewal_failed(f"rejected the renewed certificate: {error}")
        await asyncio.to_thread(
            replace_files,
            self.state_dir,
            {
                KEY_FILE: (private_key_pem(key), 0o600),
                CERT_FILE: (certificate_pem, 0o644),
                CA_CHAIN_FILE: (chain_pem, 0o644),
                CLIENT_CHAIN_FILE: (client_chain_pem(certificate_pem.encode(), chain_pem.encode()), 0o644),
            },
        )
        self.key = key
        self.certificate = certificate
        if self.state.lookup_proof:
            # The proof named the old key, so a later onboarding with this one must look up again first.
            self.state.lookup_proof = None
            self.state.lookup_proof_stale = True
            save_state(self.state_dir, self.state)
        logger.info("%s: certificate serial %s renewed as serial %s, valid until %s; reconnecting", self.product_id,
                    old_serial, certificate.serial_hex, certificate.not_after)
        client.use_new_certificate(certificate.not_after)
        return None

    def _renewal_failed(self, error: str, retry_after: float = 0.0) -> float:
        logger.warning("%s: %s (keeping the current certificate)", self.product_id, error)
        self._record_error(f"renewal: {error}")
        return retry_after

    def _lookup_fact(self) -> dict[str, str]:
        looked_up = self.state.phase_times.get("looked_up")
        return {"ztp_lookup_at": looked_up} if looked_up else {}

    async def _report_onboarded(self, serial_hex: str) -> None:
        """Tell the Provision Server this EC is onboarded (``POST /api/v1/ztp/report``); one try, no retry."""
        device = self.device
        session = await self._session()
        try:
            response = await call_json(
                session, "POST", f"{device.provision_url}/api/v1/ztp/report", token=device.access_key,
                body={"product_id": device.product_id, "status": "onboarded",
                      "director_url": self.state.director_url, "certificate_serial": serial_hex},
                read_timeout=10.0, ssl_context=self.http_ssl,
            )
        except TransportError as error:
            logger.info("%s: could not report onboarded to the Provision Server: %s", self.product_id, error)
            return
        self._report_response("report", response)
        if not 200 <= response.status < 300:
            logger.info("%s: the Provision Server did not accept the onboarded report: %s %s", self.product_id,
                        response.status, response.body.get("code") if isinstance(response.body, dict) else "")

    async def _hold_then_stop(self, client: TunnelClient, tunnel: asyncio.Task[None]) -> None:
        connected = asyncio.create_task(client.connected.wait())
        try:
            await asyncio.wait({tunnel, connected}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            connected.cancel()
        if tunnel.done():
            tunnel.result()
            return

        logger.info(
            "%s: holding the tunnel for %g s before exiting",
            self.product_id,
            self.options.hold_seconds,
        )
        await asyncio.wait({tunnel}, timeout=self.options.hold_seconds)
        if tunnel.done():
            tunnel.result()
            return
        self.finished = True
        logger.info("%s: hold time over, closing the tunnel", self.product_id)

    def _on_tunnel_up(self, hello: dict[str, Any]) -> None:
        # Check the certificate's remaining lifetime at every tunnel start.
        self._renewal_wakeup.set()
        if self.certificate is not None and self._reported_serial != self.certificate.serial_hex:
            self._reported_serial = self.certificate.serial_hex
            # Best effort: the Provision Server only shows the MSP that this EC
            # is onboarded; the tunnel never waits for it.
            self._report_task = asyncio.get_running_loop().create_task(
                self._report_onboarded(self.certificate.serial_hex), name=f"report {self.product_id}"
            )
        if self.phase != "tunnel_up":
            self._reach("tunnel_up")
        else:
            self.state.reach("tunnel_up")
            self.state.last_error = None
            save_state(self.state_dir, self.state)
