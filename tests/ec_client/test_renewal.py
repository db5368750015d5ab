"""Certificate renewal by the agent, against the scripted servers of ``servers.py``."""

from __future__ import annotations

import asyncio
import os

from cryptography import x509

from ec_client.agent import run_agent
from ec_client.state import PENDING_DIR, PENDING_READY_FILE, finish_pending_replace, replace_files

from .renewal_server import RenewingZtsp
from .servers import fast_options, make_device


def _serial(folder) -> str:
    return format(x509.load_pem_x509_certificate((folder / "cert.pem").read_bytes()).serial_number, "x")


def test_renew_due_makes_agent_renew_and_reconnect(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with RenewingZtsp(pki) as ztsp:
            ztsp.renew_due = {"not_after": "2030-01-01T00:00:00Z", "reason": "expiring"}
            make_device(folder, ztsp)
            result = await run_agent(folder, fast_options(ztsp, hold_seconds=1.0))
            return ztsp, result

    ztsp, result = asyncio.run(scenario())

    assert result.phase == "tunnel_up", result.error
    assert len(ztsp.renewed_serials) == 1
    assert _serial(folder) == ztsp.renewed_serials[0]
    assert result.cert_serial == ztsp.renewed_serials[0]
    assert len(ztsp.sessions) == 2


def test_renewal_uses_new_key_with_same_subject(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with RenewingZtsp(pki) as ztsp:
            make_device(folder, ztsp)
            await run_agent(folder, fast_options(ztsp))
            old_key = (folder / "key.pem").read_bytes()
            old_csr = x509.load_pem_x509_csr((folder / "csr.pem").read_bytes())
            ztsp.renew_due = {"not_after": "2030-01-01T00:00:00Z", "reason": "issuing_ca_retired"}
            await run_agent(folder, fast_options(ztsp, hold_seconds=0.5))
            return ztsp, old_key, old_csr

    ztsp, old_key, old_csr = asyncio.run(scenario())

    assert len(ztsp.renew_csrs) == 1
    renewal_csr = x509.load_pem_x509_csr(ztsp.renew_csrs[0].encode())
    assert renewal_csr.subject == old_csr.subject
    assert renewal_csr.public_key() != old_csr.public_key()
    assert (folder / "key.pem").read_bytes() != old_key
    leaf = x509.load_pem_x509_certificate((folder / "cert.pem").read_bytes())
    assert leaf.public_key() == renewal_csr.public_key()


def test_rejected_renewal_keeps_certificate_and_retries(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with RenewingZtsp(pki) as ztsp:
            make_device(folder, ztsp)
            await run_agent(folder, fast_options(ztsp))
            before = {name: (folder / name).read_bytes() for name in ("key.pem", "cert.pem", "ca_chain.pem")}
            ztsp.renew_errors = [{"code": "not_onboarded", "detail": "rejected by a test"}] * 100
            options = fast_options(ztsp, renew_fraction=1.0, renew_check_seconds=0.2, hold_seconds=1.5)
            result = await run_agent(folder, options)
            return ztsp, before, result

    ztsp, before, result = asyncio.run(scenario())

    assert result.phase == "tunnel_up", result.error
    assert len(ztsp.renew_csrs) >= 2
    assert {name: (folder / name).read_bytes() for name in before} == before
    assert "rejected by a test" in (folder / "state.json").read_text()
    assert len(ztsp.sessions) == 2


def test_revoked_at_hello_onboards_with_new_key(pki, tmp_path):
    folder = tmp_path / "ec1"

    async def scenario():
        async with RenewingZtsp(pki) as ztsp:
            make_device(folder, ztsp)
            await run_agent(folder, fast_options(ztsp))
            old_key = (folder / "key.pem").read_bytes()
            ztsp.tunnel_errors = [{"type": "error", "code": "certificate_revoked", "detail": "revoked by a test"}]
            result = await run_agent(folder, fast_options(ztsp))
            return ztsp, old_key, result

    ztsp, old_key, result = asyncio.run(scenario())

    assert result.phase == "tunnel_up", result.error
    assert ztsp.count("onboard") == 2
    assert (folder / "key.pem").read_bytes() != old_key
    assert len(ztsp.sessions) == 3


def test_replace_files_replaces_all_files(tmp_path):
    (tmp_path / "a").write_text("old a")
    (tmp_path / "b").write_text("old b")

    replace_files(tmp_path, {"a": ("new a", 0o600), "b": (b"new b", 0o644)})

    assert (tmp_path / "a").read_text() == "new a"
    assert (tmp_path / "b").read_text() == "new b"
    assert oct((tmp_path / "a").stat().st_mode & 0o777) == oct(0o600)
    assert not (tmp_path / PENDING_DIR).exists()


def test_interrupted_replace_is_finished_at_next_start(tmp_path):
    """A crash after the set was committed and one file moved: the next start moves the rest."""
    (tmp_path / "b").write_text("old b")
    pending = tmp_path / PENDING_DIR
    pending.mkdir()
    (tmp_path / "a").write_text("new a")
    (pending / "b").write_text("new b")
    (pending / PENDING_READY_FILE).write_text("a\nb\n")

    finished = finish_pending_replace(tmp_path)

    assert finished == ["a", "b"]
    assert (tmp_path / "a").read_text() == "new a"
    assert (tmp_path / "b").read_text() == "new b"
    assert not pending.exists()


def test_uncommitted_replace_is_discarded(tmp_path):
    (tmp_path / "a").write_text("old a")
    pending = tmp_path / PENDING_DIR
    pending.mkdir()
    (pending / "a").write_text("new a")

    finished = finish_pending_replace(tmp_path)

    assert finished == []
    assert (tmp_path / "a").read_text() == "old a"
    assert not os.path.exists(pending)
