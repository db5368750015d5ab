"""Console scripts ``ec-agent`` (one Edge Controller) and ``ec-fleet`` (many)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from ec_client.agent import MAX_WAIT_SECONDS, AgentOptions, AgentResult, run_agent
from ec_client.fleet import (
    DEFAULT_CONCURRENCY,
    find_state_dirs,
    format_stage_table,
    format_table,
    plot_stages,
    run_fleet_async,
    summarize,
)
from ec_client.keys import KEY_TYPES

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--resolve",
        action="append",
        default=[],
        metavar="HOST:PORT:ADDRESS",
        help="connect to ADDRESS for HOST:PORT without DNS, like curl --resolve. HOST may be "
        "*.domain, e.g. *.localhost:8000:127.0.0.1. Applies to HTTP and the tunnel. Repeatable.",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        metavar="S",
        help="stop after S seconds in total (default: no limit)",
    )
    parser.add_argument(
        "--hold",
        type=float,
        metavar="S",
        help="keep the tunnel S seconds after it first comes up, then exit "
        "(default: keep it until the deadline or Ctrl-C)",
    )
    parser.add_argument(
        "--backoff-max",
        type=float,
        default=60.0,
        metavar="S",
        help="maximum retry backoff in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--wait",
        type=int,
        default=30,
        metavar="S",
        help=f"long-poll wait in seconds sent to the Director, 0 to {MAX_WAIT_SECONDS} (default: %(default)s)",
    )
    parser.add_argument(
        "--key-type",
        choices=KEY_TYPES,
        default="ec",
        help="type of a newly generated key. An existing key.pem is always reused (default: %(default)s)",
    )
    parser.add_argument(
        "--heartbeat",
        type=float,
        metavar="S",
        help="heartbeat period in seconds (default: the tunnel server's heartbeat_interval)",
    )
    parser.add_argument(
        "--ca-file",
        metavar="PEM",
        help="extra CA certificates to trust for https Provision Server and Director URLs",
    )
    parser.add_argument(
        "--keep-retrying",
        action="store_true",
        help="after a rejection or an invalid certificate, start over after the maximum backoff instead of stopping",
    )
    parser.add_argument(
        "--renew-fraction",
        type=float,
        default=1 / 3,
        metavar="F",
        help="renew the certificate over the tunnel when less than this fraction of its lifetime is left, "
        "above 0 and at most 1; 1 renews at every tunnel start (default: 1/3)",
    )
    parser.add_argument(
        "--renew-check",
        type=float,
        default=3600.0,
        metavar="S",
        help="seconds between checks of the certificate's remaining lifetime, and the maximum wait "
        "before a failed renewal is tried again (default: %(default)s)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")


def _options_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> AgentOptions:
    try:
        return AgentOptions(
            resolve=tuple(args.resolve),
            backoff_max=args.backoff_max,
            wait_seconds=args.wait,
            heartbeat_interval=args.heartbeat,
            key_type=args.key_type,
            deadline_seconds=args.deadline,
            exit_when_connected=args.hold is not None,
            hold_seconds=args.hold or 0.0,
            keep_retrying=args.keep_retrying,
            ca_file=args.ca_file,
            verbose=args.verbose,
            renew_fraction=args.renew_fraction,
            renew_check_seconds=args.renew_check,
        )
    except ValueError as error:
        parser.error(str(error))


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # asyncio debug output would drown the agent's own lines.
    logging.getLogger("asyncio").setLevel(logging.WARNING)


async def _run_until_signal(start: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run ``start(stop)`` and set ``stop`` on SIGINT or SIGTERM, so agents end cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        # NOTE: add_signal_handler is missing on Windows. There Ctrl-C raises
        # KeyboardInterrupt, which the callers turn into exit status 130.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal_number, stop.set)
            installed.append(signal_number)
    try:
        return await start(stop)
    finally:
        for signal_number in installed:
            loop.remove_signal_handler(signal_number)


def agent_main(argv: list[str] | None = None) -> int:
    """Run ``ec-agent`` and return 0 if the tunnel came up, else 1."""
    parser = argparse.ArgumentParser(
        prog="ec-agent",
        description="Run one simulated Edge Controller: look up its Director, onboard, "
        "get its certificate and keep the management tunnel open.",
    )
    parser.add_argument("state_dir", type=Path, help="state folder containing device.json")
    parser.add_argument("--json", action="store_true", help="print the result as a JSON object on stdout")
    _add_common_arguments(parser)
    args = parser.parse_args(argv)
    options = _options_from(args, parser)
    _configure_logging(args.verbose)

    try:
        result: AgentResult = asyncio.run(_run_until_signal(lambda stop: run_agent(args.state_dir, options, stop=stop)))
    except KeyboardInterrupt:
        return 130

    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        seconds = result.seconds_to_phase.get("tunnel_up")
        line = f"{result.product_id or result.state_dir}: {result.phase}"
        if seconds is not None:
            line += f" after {seconds:.1f} s"
        if result.error:
            line += f" ({result.error})"
        print(line)
    return 0 if result.ok else 1


def _raise_open_file_limit(needed: int) -> None:
    """Raise the soft limit on open files towards ``needed``.

    Every agent keeps a tunnel socket open. The hard limit set by the
    administrator still applies, and a warning is logged when it is too low.
    """
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        logger.warning(
            "fleet: open file limit is %d but about %d may be needed; "
            "raise it with ulimit -n or run fewer agents with --count",
            soft,
            needed,
        )


def fleet_main(argv: list[str] | None = None) -> int:
    """Run ``ec-fleet`` and return 0 only if every agent's tunnel came up."""
    parser = argparse.ArgumentParser(
        prog="ec-fleet",
        description="Run one simulated Edge Controller per subfolder of STATE_PARENT that "
        "contains device.json, concurrently, and print a report.",
    )
    parser.add_argument("state_parent", type=Path, help="folder of state folders")
    parser.add_argument("--count", type=int, metavar="N", help="run only the first N state folders, sorted by name")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        metavar="C",
        help="maximum HTTP connections and tunnel handshakes in progress at once (default: %(default)s)",
    )
    parser.add_argument("--json-report", type=Path, metavar="FILE", help="write the results as a JSON list to FILE")
    parser.add_argument("--stagger", type=float, default=0.0, metavar="SECONDS",
                        help="spread the agents' starts evenly over SECONDS (default 0: all start at once)")
    parser.add_argument("--plot", type=Path, metavar="FILE.png",
                        help="draw the ECs per stage over time as a PNG (needs matplotlib)")
    _add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.stagger < 0:
        parser.error(f"invalid --stagger {args.stagger}: must be 0 or more seconds")
    options = _options_from(args, parser)
    if args.count is not None and args.count < 1:
        parser.error(f"invalid --count {args.count}: must be at least 1")
    if args.concurrency < 1:
        parser.error(f"invalid --concurrency {args.concurrency}: must be at least 1")
    _configure_logging(args.verbose)

    try:
        folders = find_state_dirs(args.state_parent, args.count)
    except FileNotFoundError as error:
        parser.error(str(error))
    if not folders:
        parser.error(f"no subfolder of {args.state_parent} contains device.json")
    # One tunnel socket per agent plus the HTTP pool and some headroom.
    _raise_open_file_limit(len(folders) + args.concurrency + 64)

    try:
        results = asyncio.run(
            _run_until_signal(lambda stop: run_fleet_async(folders, options, args.concurrency, stop=stop,
                                                           stagger_seconds=args.stagger))
        )
    except KeyboardInterrupt:
        return 130

    print(format_table(results))
    print()
    print(format_stage_table(results))
    print(summarize(results))
    if args.plot:
        try:
            print(f"plot: {plot_stages(results, args.plot)}")
        except ImportError as error:
            logger.error("fleet: %s", error)
    if args.json_report:
        args.json_report.write_text(json.dumps([result.to_dict() for result in results], indent=2) + "\n")
    return 0 if results and all(result.ok for result in results) else 1
