import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import ec_client
from ec_client.fleet import find_state_dirs, format_table, run_fleet_async, summarize

from .servers import FakeZtsp, fast_options, make_device

PROJECT_ROOT = Path(ec_client.__file__).resolve().parent.parent


def test_fleet_of_50_reaches_tunnel_up(pki, tmp_path):
    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            ztsp.lookup_script = [
                (409, {"code": "not_claimed", "detail": "not claimed yet"}, {"Retry-After": "0"})
            ] * 20
            folders = [make_device(tmp_path / f"ec{n:03d}", ztsp, n) for n in range(50)]
            options = fast_options(ztsp, deadline_seconds=30, hold_seconds=0.5)
            return ztsp, await run_fleet_async(folders, options, concurrency=10)

    ztsp, results = asyncio.run(scenario())

    assert [result.phase for result in results] == ["tunnel_up"] * 50, format_table(results)
    assert len({result.product_id for result in results}) == 50
    assert len({session.peer_common_name for session in ztsp.sessions}) == 50
    assert summarize(results).startswith("50 ECs: 50 tunnel_up")


def test_find_state_dirs_sorted_and_counted(tmp_path):
    for name in ("b", "a", "c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "device.json").write_text("{}")
    (tmp_path / "empty").mkdir()

    folders = find_state_dirs(tmp_path, count=2)

    assert [folder.name for folder in folders] == ["a", "b"]


async def _start_cli(entry_point: str, *args: str) -> asyncio.subprocess.Process:
    """Start ``ec_client.cli.<entry_point>`` as the console script would, in a subprocess."""
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        f"import sys; from ec_client.cli import {entry_point}; sys.exit({entry_point}())",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )


def _resolve_arguments(ztsp: FakeZtsp) -> list[str]:
    return [argument for rule in ztsp.resolve for argument in ("--resolve", rule)]


def test_agent_cli_hold_exits_zero(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            make_device(folder, ztsp)
            process = await _start_cli(
                "agent_main",
                str(folder),
                *_resolve_arguments(ztsp),
                "--hold",
                "0.2",
                "--deadline",
                "20",
                "--json",
            )
            stdout, stderr = await process.communicate()
            return process.returncode, stdout, stderr

    returncode, stdout, stderr = asyncio.run(scenario())

    assert returncode == 0, stderr.decode()
    assert json.loads(stdout)["phase"] == "tunnel_up"
    assert b"tunnel up" in stderr
    assert b"prov-test-key" not in stderr
    assert b"tenant-test-key" not in stderr
    assert b"poll-" not in stderr


def test_agent_cli_deadline_exits_one(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            ztsp.lookup_script = [(403, {"code": "disabled", "detail": "decommissioned"}, {})] * 50
            make_device(folder, ztsp)
            process = await _start_cli("agent_main", str(folder), "--deadline", "1", "--backoff-max", "0.2")
            stdout, stderr = await process.communicate()
            return process.returncode, stdout, stderr

    returncode, stdout, _ = asyncio.run(scenario())

    assert returncode == 1
    assert b"deadline of 1 s reached in phase new" in stdout
    assert b"disabled" in stdout


def test_agent_cli_sigint_exits_cleanly(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            make_device(folder, ztsp)
            process = await _start_cli("agent_main", str(folder), *_resolve_arguments(ztsp))
            async with asyncio.timeout(15):
                while not ztsp.sessions:
                    await asyncio.sleep(0.05)
            process.send_signal(signal.SIGINT)
            stdout, stderr = await asyncio.wait_for(process.communicate(), 10)
            return process.returncode, stdout, stderr

    returncode, stdout, stderr = asyncio.run(scenario())

    assert returncode == 0, stderr.decode()
    assert b": tunnel_up after" in stdout
    assert b"Traceback" not in stderr


def test_fleet_cli_writes_json_report(pki, tmp_path):
    report = tmp_path / "report.json"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            for number in range(4):
                make_device(tmp_path / "fleet" / f"ec{number}", ztsp, number)
            process = await _start_cli(
                "fleet_main",
                str(tmp_path / "fleet"),
                "--count",
                "3",
                "--concurrency",
                "2",
                *_resolve_arguments(ztsp),
                "--hold",
                "0.2",
                "--deadline",
                "20",
                "--json-report",
                str(report),
            )
            stdout, stderr = await process.communicate()
            return process.returncode, stdout, stderr

    returncode, stdout, stderr = asyncio.run(scenario())

    assert returncode == 0, stderr.decode()
    results = json.loads(report.read_text())
    assert [result["phase"] for result in results] == ["tunnel_up"] * 3
    assert [Path(result["state_dir"]).name for result in results] == ["ec0", "ec1", "ec2"]
    assert b"3 ECs: 3 tunnel_up" in stdout
    assert stdout.startswith(b"PRODUCT ID")


def test_fleet_cli_fails_if_any_agent_fails(pki, tmp_path):
    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            ztsp.decision = "rejected"
            make_device(tmp_path / "fleet" / "ec0", ztsp)
            process = await _start_cli(
                "fleet_main", str(tmp_path / "fleet"), *_resolve_arguments(ztsp), "--deadline", "20"
            )
            stdout, stderr = await process.communicate()
            return process.returncode, stdout, stderr

    returncode, stdout, _ = asyncio.run(scenario())

    assert returncode == 1
    assert b"1 ECs: 1 rejected" in stdout
