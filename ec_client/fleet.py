"""Run many simulated Edge Controllers concurrently on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import statistics
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from ec_client.agent import AgentOptions, AgentResult, run_agent
from ec_client.http import make_connector
from ec_client.state import DEVICE_FILE, PHASE_FAILED, PHASES

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


def start_offsets(count: int, stagger_seconds: float) -> list[float]:
    """Return when each of ``count`` agents starts, in seconds from the fleet's start, spread evenly over
    ``stagger_seconds`` (all at 0 when it is 0: a simultaneous start)."""
    if stagger_seconds < 0:
        raise ValueError(f"invalid stagger {stagger_seconds}: must be 0 or more seconds")
    if count <= 1 or stagger_seconds == 0:
        return [0.0] * count
    step = stagger_seconds / (count - 1)
    return [round(index * step, 3) for index in range(count)]


async def run_fleet_async(
    state_dirs: Iterable[str | os.PathLike[str]],
    options: AgentOptions,
    concurrency: int = DEFAULT_CONCURRENCY,
    *,
    stop: asyncio.Event | None = None,
    stagger_seconds: float = 0.0,
) -> list[AgentResult]:
    """Run one agent per state folder and return their results in the same order.

    ``concurrency`` bounds the HTTP connections open at once across the fleet,
    because all agents share one connector pool, and requests beyond it wait
    their turn. It also bounds the tunnel handshakes in progress at once. Open
    tunnels do not count, so every agent can keep its tunnel. No agent gets a
    thread of its own. With ``stagger_seconds`` the agents start one after
    another, spread evenly over that time, as devices powered on over a
    morning would.
    """
    if concurrency < 1:
        raise ValueError(f"invalid concurrency {concurrency}: must be at least 1")
    folders = [Path(folder) for folder in state_dirs]
    offsets = start_offsets(len(folders), stagger_seconds)
    connector = make_connector(options.overrides, limit=concurrency)
    connect_slots = asyncio.Semaphore(concurrency)
    logger.info("fleet: starting %d agents over %.1f s, concurrency %d", len(folders), stagger_seconds,
                concurrency)

    async def run_one(folder: Path, offset: float) -> AgentResult:
        if offset:
            if stop is None:
                await asyncio.sleep(offset)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=offset)
        result = await run_agent(folder, options, connector=connector, connect_slots=connect_slots, stop=stop)
        result.start_offset = offset
        return result

    try:
        outcomes = await asyncio.gather(
            *(run_one(folder, offset) for folder, offset in zip(folders, offsets, strict=True)),
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


# The stages of the report: every phase after "new", in order.
STAGES = tuple(phase for phase in PHASES if phase != "new")


def stage_times(results: list[AgentResult]) -> dict[str, list[float]]:
    """Return, for each stage, the sorted seconds from the fleet's start at which agents reached it."""
    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for result in results:
        for stage in STAGES:
            if stage in result.seconds_to_phase:
                times[stage].append(round(result.start_offset + result.seconds_to_phase[stage], 3))
    return {stage: sorted(values) for stage, values in times.items()}


def _percentile(values: list[float], fraction: float) -> float:
    # Nearest rank on sorted values: the smallest value with at least ``fraction`` of the values at or below it.
    return values[max(0, min(len(values) - 1, int(fraction * len(values) + 0.999999) - 1))]


def format_stage_table(results: list[AgentResult]) -> str:
    """Return one line per stage: how many agents reached it, and when (seconds from the fleet's start)."""
    headers = ("STAGE", "REACHED", "FIRST S", "MEDIAN S", "P90 S", "LAST S")
    rows = []
    for stage, values in stage_times(results).items():
        if values:
            cells = [f"{values[0]:.1f}", f"{_percentile(values, 0.5):.1f}", f"{_percentile(values, 0.9):.1f}",
                     f"{values[-1]:.1f}"]
        else:
            cells = ["-"] * 4
        rows.append((stage, f"{len(values)}/{len(results)}", *cells))
    widths = [max(len(row[column]) for row in [headers, *rows]) for column in range(len(headers))]
    return "\n".join("  ".join(cell.ljust(widths[column]) for column, cell in enumerate(row)).rstrip()
                     for row in [headers, *rows])


def plot_stages(results: list[AgentResult], path: str | os.PathLike[str], *, title: str = "EC fleet") -> Path:
    """Draw how many agents had reached each stage over time as a PNG at ``path``; return the path.

    Needs matplotlib (the project's ``plot`` extra); raises ImportError naming it when missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError as error:
        raise ImportError("plotting needs matplotlib: pip install 'ztsp[plot]' or pip install matplotlib") from error

    times = stage_times(results)
    end = max([values[-1] for values in times.values() if values], default=0.0)
    figure, axes = pyplot.subplots(figsize=(9, 5), dpi=100)
    try:
        for stage, values in times.items():
            # A step line from 0 ECs at the start to len(values) at the last arrival, held to the end.
            xs = [0.0, *values, max(end, values[-1] if values else 0.0)]
            ys = [0, *range(1, len(values) + 1), len(values)]
            axes.step(xs, ys, where="post", label=stage)
        axes.set_xlabel("seconds since the fleet started")
        axes.set_ylabel("ECs that reached the stage")
        axes.set_title(f"{title}: {len(results)} ECs")
        axes.set_ylim(0, max(len(results), 1) * 1.05)
        axes.grid(True, alpha=0.3)
        axes.legend(loc="lower right")
        figure.tight_layout()
        figure.savefig(path, format="png")
    finally:
        pyplot.close(figure)
    return Path(path)
