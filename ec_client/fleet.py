"""Run many simulated Edge Controllers concurrently on one event loop."""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from ec_client.agent import AgentOptions, AgentResult, run_agent
from ec_client.http import make_connector
from ec_client.state import DEVICE_FILE, PHASE_FAILED

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 100


def find_state_dirs(parent: str | os.PathLike[str], count: int | None = None) -> list[Path]:
    """Return the subfolders of ``parent`` that contain device.json, sorted by name,
    the first ``count`` of them if ``count`` is given."""
    root = Path(parent)
    if not root.is_dir():
        raise FileNotFoundError(f"state parent folder {root} not found")
    folders = sorted(child for child in root.iterdir() if (child / DEVICE_FILE).is_file())
    return folders if count is None else folders[:count]


async def run_fleet_async(
    state_dirs: Iterable[str | os.PathLike[str]],
    options: AgentOptions,
    concurrency: int = DEFAULT_CONCURRENCY,
    *,
    stop: asyncio.Event | None = None,
) -> list[AgentResult]:
    """Run one agent per state folder and return their results in the same order.

    ``concurrency`` bounds the HTTP connections open at once across the fleet,
    because all agents share one connector pool, and requests beyond it wait
    their turn. It also bounds the tunnel handshakes in progress at once. Open
    tunnels do not count, so every agent can keep its tunnel. No agent gets a
    thread of its own.
    """
    if concurrency < 1:
        raise ValueError(f"invalid concurrency {concurrency}: must be at least 1")
    folders = [Path(folder) for folder in state_dirs]
    connector = make_connector(options.overrides, limit=concurrency)
    connect_slots = asyncio.Semaphore(concurrency)
    logger.info("fleet: starting %d agents, concurrency %d", len(folders), concurrency)
    try:
        outcomes = await asyncio.gather(
            *(
                run_agent(folder, options, connector=connector, connect_slots=connect_slots, stop=stop)
                for folder in folders
            ),
            return_exceptions=True,
        )
    finally:
        await connector.close()

    results: list[AgentResult] = []
    for folder, outcome in zip(folders, outcomes, strict=True):
        if isinstance(outcome, AgentResult):
            results.append(outcome)
            continue
        if isinstance(outcome, asyncio.CancelledError):
            raise outcome
        # run_agent reports errors in its result, so this is a bug in the agent.
        logger.error("fleet: agent in %s raised %r", folder, outcome, exc_info=outcome)
        results.append(
            AgentResult(
                product_id=None,
                state_dir=str(folder),
                phase=PHASE_FAILED,
                error=f"{type(outcome).__name__}: {outcome}",
            )
        )
    logger.info("fleet: %s", summarize(results))
    return results


def run_fleet(
    state_dirs: Iterable[str | os.PathLike[str]],
    options: AgentOptions,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[AgentResult]:
    """Run :func:`run_fleet_async` on a new event loop, so call it only from synchronous code."""
    return asyncio.run(run_fleet_async(state_dirs, options, concurrency))


def format_table(results: list[AgentResult]) -> str:
    """Return one line per agent: Product ID, Director, phase, seconds to tunnel_up, error."""
    headers = ("PRODUCT ID", "DIRECTOR", "PHASE", "TUNNEL S", "ERROR")
    rows = []
    for result in results:
        seconds = result.seconds_to_phase.get("tunnel_up")
        rows.append(
            (
                result.product_id or result.state_dir,
                result.director_url or "-",
                result.phase,
                f"{seconds:.1f}" if seconds is not None else "-",
                result.error or "",
            )
        )
    widths = [max([len(headers[column])] + [len(row[column]) for row in rows]) for column in range(4)]
    lines = []
    for row in [headers, *rows]:
        cells = [row[column].ljust(widths[column]) for column in range(4)]
        lines.append("  ".join([*cells, row[4]]).rstrip())
    return "\n".join(lines)


def summarize(results: list[AgentResult]) -> str:
    """Return a one-line summary: counts per phase and seconds to tunnel_up (median, max)."""
    phases = Counter(result.phase for result in results)
    counts = ", ".join(f"{count} {phase}" for phase, count in sorted(phases.items()))
    line = f"{len(results)} ECs: {counts or 'none'}"
    seconds = [result.seconds_to_phase["tunnel_up"] for result in results if "tunnel_up" in result.seconds_to_phase]
    if seconds:
        line += f"; seconds to tunnel_up: median {statistics.median(seconds):.1f}, max {max(seconds):.1f}"
    return line
