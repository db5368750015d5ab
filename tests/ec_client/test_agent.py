import asyncio
import json
import stat
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ec_client.agent import run_agent

from .servers import TENANT, FakeZtsp, fast_options, make_device


def _pem(certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


async def _wait_until(condition, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def _state(folder) -> dict:
    return json.loads((folder / "state.json").read_text())


def test_agent_reaches_tunnel_up(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            make_device(folder, ztsp)
            return ztsp, await run_agent(folder, fast_options(ztsp))

    ztsp, result = asyncio.run(scenario())

    assert result.phase == "tunnel_up", result.error
    assert result.error is None
    assert result.director_url == f"http://{TENANT}.localhost:{ztsp.http_port}"
    assert list(result.seconds_to_phase) == [
        "looked_up",
        "onboard_requested",
        "issued",
        "tunnel_up",
    ]
    certificate = x509.load_pem_x509_certificate((folder / "cert.pem").read_bytes())
    assert result.cert_serial == format(certificate.serial_number, "x")
    assert _state(folder)["phase"] == "tunnel_up"
    assert stat.S_IMODE((folder / "key.pem").stat().st_mode) == 0o600


def test_director_reached_by_tenant_name(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            make_device(folder, ztsp)
            await run_agent(folder, fast_options(ztsp))
            return ztsp

    ztsp = asyncio.run(scenario())

    director_hosts = {host for endpoint, _, host in ztsp.calls if endpoint != "lookup"}
    assert director_hosts == {f"{TENANT}.localhost:{ztsp.http_port}"}


def test_lookup_409_honors_retry_after(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            ztsp.lookup_script = [(409, {"code": "not_claimed", "detail": "not claimed yet"}, {"Retry-After": "1"})]
            make_device(folder, ztsp)
            return ztsp, await run_agent(folder, fast_options(ztsp))

    ztsp, result = asyncio.run(scenario())

    lookups = [moment for endpoint, moment, _ in ztsp.calls if endpoint == "lookup"]
    assert result.phase == "tunnel_up", result.error
    assert len(lookups) == 2
    # Retry-After: 1 plus at most 1 s of jitter, though backoff_max is only 0.5 s.
    assert 1.0 <= lookups[1] - lookups[0] < 2.5


def test_lookup_404_keeps_retrying(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            ztsp.lookup_script = [(404, {"code": "unknown_product", "detail": "Product ID not found"}, {})] * 100
            make_device(folder, ztsp)
            options = fast_options(ztsp, backoff_max=0.2, deadline_seconds=1.5)
            return ztsp, await run_agent(folder, options)

    ztsp, result = asyncio.run(scenario())

    assert result.phase == "new"
    assert "deadline of 1.5 s reached in phase new" in result.error
    assert "unknown_product" in result.error
    assert ztsp.count("lookup") >= 5


def test_lookup_5xx_backs_off_then_succeeds(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            ztsp.lookup_script = [(503, {"code": "unavailable", "detail": "down"}, {})] * 3
            make_device(folder, ztsp)
            return ztsp, await run_agent(folder, fast_options(ztsp))

    ztsp, result = asyncio.run(scenario())

    assert result.phase == "tunnel_up", result.error
    assert ztsp.count("lookup") == 4


def test_key_reused_across_restarts(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            make_device(folder, ztsp)
            await run_agent(folder, fast_options(ztsp))
            first_key = (folder / "key.pem").read_bytes()
            (folder / "cert.pem").unlink()
            (folder / "state.json").unlink()
            result = await run_agent(folder, fast_options(ztsp, key_type="rsa2048"))
            return ztsp, first_key, result

    ztsp, first_key, result = asyncio.run(scenario())

    assert result.phase == "tunnel_up", result.error
    assert (folder / "key.pem").read_bytes() == first_key
    # Same key and CSR, so the Director returned the same request both times.
    assert len(ztsp.requests) == 1


def test_restart_with_certificate_skips_onboarding(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            make_device(folder, ztsp)
            await run_agent(folder, fast_options(ztsp))
            calls_before = len(ztsp.calls)
            result = await run_agent(folder, fast_options(ztsp))
            return ztsp, calls_before, result

    ztsp, calls_before, result = asyncio.run(scenario())

    assert result.phase == "tunnel_up", result.error
    assert len(ztsp.calls) == calls_before
    assert len(ztsp.sessions) == 2
    assert list(result.seconds_to_phase) == ["tunnel_up"]


def test_resume_polls_stored_request(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            ztsp.issue_after = 3600
            make_device(folder, ztsp)
            first = await run_agent(folder, fast_options(ztsp, wait_seconds=0, deadline_seconds=1.0))
            counts = (ztsp.count("lookup"), ztsp.count("onboard"))

            ztsp.issue_after = 0
            second = await run_agent(folder, fast_options(ztsp))
            return ztsp, first, counts, second

    ztsp, first, counts, second = asyncio.run(scenario())

    assert first.phase == "onboard_requested"
    assert second.phase == "tunnel_up", second.error
    assert (ztsp.count("lookup"), ztsp.count("onboard")) == counts
    assert second.request_id == first.request_id


def test_restart_with_expired_certificate_onboards_again(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            make_device(folder, ztsp)
            first = await run_agent(folder, fast_options(ztsp))
            key = serialization.load_pem_private_key((folder / "key.pem").read_bytes(), None)
            expired = datetime.now(UTC) - timedelta(seconds=1)
            product_id = first.product_id
            (folder / "cert.pem").write_text(_pem(pki.issue(key.public_key(), product_id, not_after=expired)))
            second = await run_agent(folder, fast_options(ztsp))
            return ztsp, first, second

    ztsp, first, second = asyncio.run(scenario())

    assert second.phase == "tunnel_up", second.error
    assert second.request_id != first.request_id
    assert second.cert_serial != first.cert_serial
    assert len(ztsp.requests) == 2


def test_rejected_with_keep_retrying_onboards_again(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            ztsp.decision = "rejected"
            make_device(folder, ztsp)
            options = fast_options(ztsp, keep_retrying=True, deadline_seconds=1.5)
            return ztsp, await run_agent(folder, options)

    ztsp, result = asyncio.run(scenario())

    assert result.phase == "onboard_requested"
    assert "deadline" in result.error
    assert ztsp.count("onboard") >= 2
    assert len(ztsp.requests) >= 2


def test_mismatched_certificate_rejected(pki, tmp_path):
    folder = tmp_path / "ec1"
    other_key = ec.generate_private_key(ec.SECP256R1())

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            make_device(folder, ztsp)
            product_id = json.loads((folder / "device.json").read_text())["product_id"]
            ztsp.certificate_override = _pem(pki.issue(other_key.public_key(), product_id))
            return ztsp, await run_agent(folder, fast_options(ztsp))

    ztsp, result = asyncio.run(scenario())

    assert result.phase == "failed"
    assert "does not match key.pem" in result.error
    assert not (folder / "cert.pem").exists()
    assert ztsp.sessions == []
    assert _state(folder)["phase"] == "failed"


def test_rejected_request_stops(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            ztsp.decision = "rejected"
            make_device(folder, ztsp)
            return ztsp, await run_agent(folder, fast_options(ztsp))

    ztsp, result = asyncio.run(scenario())

    assert result.phase == "rejected"
    assert "rejected by a test" in result.error
    assert ztsp.count("poll") == 1
    assert "deadline" not in result.error


def test_poll_404_onboards_again(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            ztsp.poll_script = [(404, {"code": "not_found", "detail": "gone"}, {})]
            make_device(folder, ztsp)
            return ztsp, await run_agent(folder, fast_options(ztsp))

    ztsp, result = asyncio.run(scenario())

    assert result.phase == "tunnel_up", result.error
    assert ztsp.count("onboard") == 2


def test_onboard_401_looks_up_again(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            ztsp.onboard_script = [(401, {"code": "invalid_access_key", "detail": "bad key"}, {})]
            make_device(folder, ztsp)
            return ztsp, await run_agent(folder, fast_options(ztsp))

    ztsp, result = asyncio.run(scenario())

    assert result.phase == "tunnel_up", result.error
    assert ztsp.count("lookup") == 2
    assert ztsp.count("onboard") == 2


def test_pending_poll_polls_again(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            ztsp.issue_after = 1.5
            make_device(folder, ztsp)
            return ztsp, await run_agent(folder, fast_options(ztsp, wait_seconds=1))

    ztsp, result = asyncio.run(scenario())

    assert result.phase == "tunnel_up", result.error
    assert ztsp.count("poll") == 2


def test_tunnel_hello_identifies_device(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            make_device(folder, ztsp)
            await run_agent(folder, fast_options(ztsp))
            return ztsp

    ztsp = asyncio.run(scenario())

    product_id = json.loads((folder / "device.json").read_text())["product_id"]
    session = ztsp.sessions[0]
    assert session.hello == {
        "type": "hello",
        "product_id": product_id,
        "firmware": "1.0.0",
        "config_version": 0,
    }
    # The server trusts only the root CA, so this also shows the client sent the issuing CA.
    assert session.peer_common_name == product_id


def test_tunnel_heartbeats_at_interval(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            ztsp.heartbeat_interval = 0.1
            make_device(folder, ztsp)
            await run_agent(folder, fast_options(ztsp, hold_seconds=0.75))
            return ztsp

    ztsp = asyncio.run(scenario())

    heartbeats = ztsp.sessions[0].heartbeats
    assert heartbeats[:5] == [1, 2, 3, 4, 5]
    assert len(heartbeats) <= 8


def test_tunnel_heartbeat_override(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            ztsp.heartbeat_interval = 30
            make_device(folder, ztsp)
            await run_agent(folder, fast_options(ztsp, heartbeat_interval=0.1, hold_seconds=0.5))
            return ztsp

    ztsp = asyncio.run(scenario())

    assert len(ztsp.sessions[0].heartbeats) >= 3


def test_tunnel_config_acknowledged(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            ztsp.push_config = {"version": 3, "body": {"ntp": ["pool.ntp.org"]}}
            make_device(folder, ztsp)
            await run_agent(folder, fast_options(ztsp, hold_seconds=0.3))
            return ztsp

    ztsp = asyncio.run(scenario())

    config = json.loads((folder / "config.json").read_text())
    assert config["version"] == 3
    assert config["body"] == {"ntp": ["pool.ntp.org"]}
    assert ztsp.sessions[0].acks == [{"type": "ack", "version": 3, "status": "applied"}]


def test_tunnel_hello_reports_config_version(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            ztsp.push_config = {"version": 4, "body": {}}
            make_device(folder, ztsp)
            await run_agent(folder, fast_options(ztsp, hold_seconds=0.3))
            await run_agent(folder, fast_options(ztsp))
            return ztsp

    ztsp = asyncio.run(scenario())

    assert ztsp.sessions[1].hello["config_version"] == 4


def test_tunnel_reconnects_after_server_error(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            ztsp.tunnel_errors = [{"type": "error", "code": "busy", "detail": "try again"}]
            make_device(folder, ztsp)
            return ztsp, await run_agent(folder, fast_options(ztsp))

    ztsp, result = asyncio.run(scenario())

    assert result.phase == "tunnel_up", result.error
    assert len(ztsp.sessions) == 2


def test_tunnel_reconnects_after_disconnect(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            make_device(folder, ztsp)
            agent = asyncio.create_task(run_agent(folder, fast_options(ztsp, hold_seconds=5)))
            await _wait_until(lambda: len(ztsp.sessions) == 1)
            for writer in list(ztsp._tunnel_writers):
                writer.close()
            await _wait_until(lambda: len(ztsp.sessions) == 2)
            agent.cancel()
            await asyncio.gather(agent, return_exceptions=True)
            return ztsp

    ztsp = asyncio.run(scenario())

    assert len(ztsp.sessions) == 2


def test_tunnel_refuses_wrong_server_name(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with FakeZtsp(pki) as ztsp:
            make_device(folder, ztsp)
            await run_agent(folder, fast_options(ztsp))
            state = _state(folder)
            state["tunnel_host"] = "other.acme.localhost"
            (folder / "state.json").write_text(json.dumps(state))
            options = fast_options(
                ztsp,
                resolve=(*ztsp.resolve, f"other.acme.localhost:{ztsp.tunnel_port}:127.0.0.1"),
                deadline_seconds=1.0,
            )
            return ztsp, await run_agent(folder, options)

    ztsp, result = asyncio.run(scenario())

    assert result.phase == "issued"
    assert "deadline" in result.error
    assert "Hostname mismatch" in result.error
    assert len(ztsp.sessions) == 1


def test_missing_device_file_fails(tmp_path):
    from ec_client.agent import AgentOptions

    result = asyncio.run(run_agent(tmp_path, AgentOptions(deadline_seconds=1)))

    assert result.phase == "failed"
    assert "device.json" in result.error
    assert "write_device" in result.error
