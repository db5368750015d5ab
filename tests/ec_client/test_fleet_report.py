"""The fleet simulator's staggered start, stage table and PNG plot."""

import asyncio

import pytest

from ec_client.agent import AgentResult
from ec_client.fleet import format_stage_table, plot_stages, run_fleet_async, stage_times, start_offsets

from .servers import FakeZtsp, fast_options, make_device

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _result(name: str, offset: float, **seconds: float) -> AgentResult:
    phase = "tunnel_up" if "tunnel_up" in seconds else "onboard_requested"
    return AgentResult(product_id=name, state_dir=name, phase=phase, seconds_to_phase=seconds, start_offset=offset)


def test_start_offsets_spread_evenly():
    assert start_offsets(5, 8.0) == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_start_offsets_all_zero_without_stagger():
    assert start_offsets(3, 0) == [0.0, 0.0, 0.0]


def test_start_offsets_reject_negative_stagger():
    with pytest.raises(ValueError, match="invalid stagger -1"):
        start_offsets(3, -1)


def test_stage_times_count_from_fleet_start():
    results = [_result("a", 0.0, looked_up=1.0, tunnel_up=3.0), _result("b", 10.0, looked_up=0.5)]

    times = stage_times(results)

    assert times["looked_up"] == [1.0, 10.5]
    assert times["tunnel_up"] == [3.0]
    assert times["issued"] == []


def test_stage_table_reports_reached_counts():
    results = [_result("a", 0.0, looked_up=1.0, tunnel_up=3.0), _result("b", 0.0, looked_up=2.0)]

    lines = format_stage_table(results).splitlines()

    assert lines[0].split() == ["STAGE", "REACHED", "FIRST", "S", "MEDIAN", "S", "P90", "S", "LAST", "S"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows["looked_up"] == ["2/2", "1.0", "1.0", "2.0", "2.0"]
    assert rows["tunnel_up"] == ["1/2", "3.0", "3.0", "3.0", "3.0"]
    assert rows["issued"] == ["0/2", "-", "-", "-", "-"]


def test_plot_writes_png(tmp_path):
    results = [_result(f"ec{n}", n * 0.5, looked_up=1.0, onboard_requested=1.5, tunnel_up=4.0) for n in range(20)]

    path = plot_stages(results, tmp_path / "fleet.png")

    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (900, 500)


def test_staggered_fleet_starts_agents_apart(pki, tmp_path):
    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            folders = [make_device(tmp_path / f"ec{n}", ztsp, n) for n in range(3)]
            options = fast_options(ztsp, deadline_seconds=30, hold_seconds=0.2)
            return await run_fleet_async(folders, options, concurrency=5, stagger_seconds=1.0)

    results = asyncio.run(scenario())

    assert [result.phase for result in results] == ["tunnel_up"] * 3
    assert [result.start_offset for result in results] == [0.0, 0.5, 1.0]
    tunnel_times = stage_times(results)["tunnel_up"]
    assert tunnel_times[-1] - tunnel_times[0] >= 0.9
