"""The Edge Controller's persistent storage: the state folder that plays the part of its eMMC.

The factory writes ``device.json`` (see :func:`write_device`). The agent writes
the key, CSR, certificates and ``state.json`` beside it, so a restarted agent
resumes where it stopped. Every write is atomic: a temporary file in the same
folder is flushed, synced and renamed over the target with ``os.replace``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEVICE_FILE = "device.json"
STATE_FILE = "state.json"
KEY_FILE = "key.pem"
CSR_FILE = "csr.pem"
CERT_FILE = "cert.pem"
CA_CHAIN_FILE = "ca_chain.pem"
# Leaf certificate followed by the issuing CA: the chain the tunnel client sends.
CLIENT_CHAIN_FILE = "client_chain.pem"
CONFIG_FILE = "config.json"
# Staging folder of :func:`replace_files`, and the file that commits its contents.
PENDING_DIR = ".pending"
PENDING_READY_FILE = "READY"

# Phases in the order the agent reaches them, then the two terminal outcomes.
PHASES = ("new", "looked_up", "onboard_requested", "issued", "tunnel_up")
PHASE_REJECTED = "rejected"
PHASE_FAILED = "failed"


class StateError(Exception):
    """A state folder file is missing or invalid."""


def atomic_write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a mix.

    The temporary file is created with ``mode`` already set, so a private key is
    never readable by others, not even for a moment.
    """
    if isinstance(data, str):
        data = data.encode()
    directory = path.parent
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry reaches the disk.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def replace_files(state_dir: Path, files: dict[str, tuple[bytes | str, int]]) -> None:
    """Replace several files of ``state_dir`` together: after a crash, readers see all old or all new files.

    ``files`` maps a file name to its data and mode. The new files are written
    to ``.pending/`` first, then a READY file listing them commits the set,
    and each file is moved into place with ``os.replace``. A crash before
    READY leaves the old files. A crash after it is completed by
    :func:`finish_pending_replace` at the next start.
    """
    pending = state_dir / PENDING_DIR
    # A leftover without READY is an uncommitted set from a crash: discard it.
    shutil.rmtree(pending, ignore_errors=True)
    pending.mkdir(mode=0o700)
    for name, (data, mode) in files.items():
        atomic_write(pending / name, data, mode)
    atomic_write(pending / PENDING_READY_FILE, "".join(f"{name}\n" for name in files))
    finish_pending_replace(state_dir)


def finish_pending_replace(state_dir: Path) -> list[str]:
    """Move a committed set of :func:`replace_files` into place; return the names of the set, or [] if none.

    A set without its READY file is deleted, so the old files stay.
    """
    pending = state_dir / PENDING_DIR
    if not pending.is_dir():
        return []
    try:
        names = (pending / PENDING_READY_FILE).read_text().split()
    except FileNotFoundError:
        shutil.rmtree(pending, ignore_errors=True)
        return []
    for name in names:
        # A file already moved before a crash is no longer in the folder.
        with contextlib.suppress(FileNotFoundError):
            os.replace(pending / name, state_dir / name)
    _fsync_directory(state_dir)
    shutil.rmtree(pending)
    return names


def write_json(path: Path, value: Any, mode: int = 0o644) -> None:
    atomic_write(path, json.dumps(value, indent=2, sort_keys=True) + "\n", mode)


def validate_product_id(product_id: str) -> None:
    """Raise ValueError unless ``product_id`` has the form ``ModelNo:UUID``."""
    model, separator, serial = product_id.partition(":")
    if not separator or not model or any(char.isspace() for char in model):
        raise ValueError(
            f"invalid Product ID {product_id!r}: expected ModelNo:UUID, "
            "for example EC100:7c9e6679-7425-40de-944b-e07fc1f90ae7"
        )
    try:
        uuid.UUID(serial)
    except ValueError:
        raise ValueError(f"invalid Product ID {product_id!r}: {serial!r} after the colon is not a UUID") from None


@dataclass(frozen=True)
class DeviceConfig:
    """Factory data from ``device.json``: identity, Provision Server and facts."""

    product_id: str
    provision_url: str
    # Provisioning access key: a secret, never logged.
    access_key: str = field(repr=False)
    facts: dict[str, Any]
    # The per-device credential from the factory, when the vendor imported
    # one: {"type": "public_key", "private_key_pem": ...} or
    # {"type": "secret", "secret": ...}. A secret, never logged.
    credential: dict[str, str] | None = field(default=None, repr=False)


def write_device(
    state_dir: str | os.PathLike[str],
    product_id: str,
    provision_url: str,
    access_key: str,
    facts: dict[str, Any],
    credential: dict[str, str] | None = None,
) -> Path:
    """Create ``state_dir`` if needed, write its ``device.json`` and return that path.

    The file contains the provisioning access key and the device credential,
    so it is written with mode 0600.
    """
    validate_product_id(product_id)
    if not provision_url.startswith(("http://", "https://")):
        raise ValueError(f"invalid provision_url {provision_url!r}: expected an http:// or https:// URL")
    if not access_key:
        raise ValueError(f"missing access_key for {product_id}: pass the provisioning access key")
    directory = Path(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / DEVICE_FILE
    document = {
        "product_id": product_id,
        "provision_url": provision_url.rstrip("/"),
        "access_key": access_key,
        "facts": dict(facts),
    }
    if credential is not None:
        problem = credential_problem(credential)
        if problem:
            raise ValueError(f"invalid credential for {product_id}: {problem}")
        document["credential"] = dict(credential)
    write_json(path, document, mode=0o600)
    return path


def load_device(state_dir: Path) -> DeviceConfig:
    """Read and validate ``device.json``, raising StateError that names the bad field."""
    path = state_dir / DEVICE_FILE
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise StateError(f"{path} not found: create it with ec_client.state.write_device()") from None
    except (OSError, ValueError) as error:
        raise StateError(f"cannot read {path}: {error}") from error
    if not isinstance(document, dict):
        raise StateError(f"invalid {path}: expected a JSON object")

    for name in ("product_id", "provision_url", "access_key"):
        value = document.get(name)
        if not isinstance(value, str) or not value:
            raise StateError(f"invalid {path}: {name!r} is missing or not a non-empty string")
    facts = document.get("facts", {})
    if not isinstance(facts, dict):
        raise StateError(f"invalid {path}: 'facts' must be a JSON object")
    try:
        validate_product_id(document["product_id"])
    except ValueError as error:
        raise StateError(f"invalid {path}: {error}") from None

    credential = document.get("credential")
    if credential is not None:
        problem = credential_problem(credential)
        if problem:
            raise StateError(f"invalid {path}: credential: {problem}")

    return DeviceConfig(
        product_id=document["product_id"],
        provision_url=document["provision_url"].rstrip("/"),
        access_key=document["access_key"],
        facts=facts,
        credential=credential,
    )


def credential_problem(credential: Any) -> str | None:
    """Say what is wrong with a device credential document, or return None."""
    if not isinstance(credential, dict):
        return "expected a JSON object"
    kind = credential.get("type")
    field_name = {"public_key": "private_key_pem", "secret": "secret"}.get(kind)
    if field_name is None:
        return f"type {kind!r} is not 'public_key' or 'secret'"
    if not isinstance(credential.get(field_name), str) or not credential[field_name]:
        return f"{field_name!r} is missing or not a non-empty string"
    return None


@dataclass
class AgentState:
    """Agent progress stored in ``state.json``, including secrets that are never logged."""

    phase: str = "new"
    director_url: str | None = None
    tenant_access_key: str | None = field(default=None, repr=False)
    request_id: str | None = None
    poll_token: str | None = field(default=None, repr=False)
    # The lookup's token saying this EC proved its device credential, for
    # the onboard request.
    lookup_proof: str | None = field(default=None, repr=False)
    # Set when a renewal replaced the key that the lookup proof named.
    lookup_proof_stale: bool = False
    tunnel_host: str | None = None
    tunnel_port: int | None = None
    # Phase name to the UTC time (ISO 8601) it was last reached.
    phase_times: dict[str, str] = field(default_factory=dict)
    last_error: str | None = None

    def reach(self, phase: str) -> None:
        self.phase = phase
        self.phase_times[phase] = datetime.now(UTC).isoformat(timespec="seconds")

    def forget_request(self) -> None:
        self.request_id = None
        self.poll_token = None

    def forget_director(self) -> None:
        self.forget_request()
        self.director_url = None
        self.tenant_access_key = None
        self.lookup_proof = None
        self.lookup_proof_stale = False


def load_state(state_dir: Path) -> AgentState:
    """Read ``state.json``, or return a fresh state if it is missing.

    A corrupt file cannot come from an atomic write, but a bad eMMC or a hand
    edit can make one. The agent then starts over rather than staying stuck,
    and raises nothing.
    """
    path = state_dir / STATE_FILE
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return AgentState()
    except (OSError, ValueError):
        return AgentState(last_error=f"unreadable {path} was replaced by a fresh state")
    if not isinstance(document, dict):
        return AgentState(last_error=f"invalid {path} was replaced by a fresh state")

    known = {item.name for item in fields(AgentState)}
    state = AgentState(**{key: value for key, value in document.items() if key in known})
    # A hand-edited file may contain other types. Dropping them is safe because
    # the agent fetches a missing value again.
    for name in ("director_url", "tenant_access_key", "request_id", "poll_token", "lookup_proof", "tunnel_host"):
        if not isinstance(getattr(state, name), str | None):
            setattr(state, name, None)
    if not isinstance(state.last_error, str | None):
        state.last_error = str(state.last_error)
    if state.phase not in (*PHASES, PHASE_REJECTED, PHASE_FAILED):
        state.phase = "new"
    if not isinstance(state.lookup_proof_stale, bool):
        state.lookup_proof_stale = False
    if not isinstance(state.phase_times, dict):
        state.phase_times = {}
    if isinstance(state.tunnel_port, bool) or not isinstance(state.tunnel_port, int | None):
        state.tunnel_port = None
    return state


def save_state(state_dir: Path, state: AgentState) -> None:
    # Mode 0600 because the file contains the tenant access key and poll token.
    write_json(state_dir / STATE_FILE, asdict(state), mode=0o600)
