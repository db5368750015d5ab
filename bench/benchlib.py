"""Shared set-up of the benchmarks: a throw-away database, Django, and result lines.

Each benchmark creates its own database ``ztsp_bench_<random>`` on the server
of ``DATABASE_URL``, or on the embedded server when ``DATABASE_URL`` is unset
(started the way ``config/settings.py`` starts it), migrates it, and drops it
at the end. An embedded PostgreSQL or Redis that the benchmark itself started
is stopped again at the end, unless another client is connected to it then.
"""

from __future__ import annotations

import os
import platform
import secrets
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

PROJECT_DIR = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
# The scripts run as `python bench/NAME.py`, which puts bench/ on sys.path but
# not the project root that contains the Django apps.
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

# Seconds to wait for an embedded server that the benchmark started to stop.
EMBEDDED_STOP_TIMEOUT = 30


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def print_header(title: str) -> None:
    """Print the benchmark's title and the machine it runs on."""
    print(f"== {title}")
    print(f"machine: {os.cpu_count()} CPUs ({_cpu_model()}), {_memory_total()} memory, "
          f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    print(f"code: {_code_version()}")
    # Other work on the machine skews every figure, and the load average shows whether there was any.
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"load average at start (1, 5, 15 min): {load}", flush=True)


def _code_version() -> str:
    """Return the project's git commit, and whether tracked files differ from it; read-only git commands only."""
    git = ["git", "-C", str(PROJECT_DIR), "--no-optional-locks"]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        changed = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                 text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"commit {commit}" + (" with uncommitted changes" if changed else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def libpq_url(url: str, database: str | None = None) -> str:
    """Return a django-environ database URL as a libpq URI, optionally naming another database."""
    parts = urlsplit(url)
    scheme = "postgresql"
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit((scheme, parts.netloc, path, parts.query, parts.fragment))


def _embedded_allowed() -> bool:
    # The same rule as config/settings.py: embedded servers unless production or ZTSP_EMBEDDED=0.
    import environ

    env = environ.Env()
    production = env.str("ZTSP_ENV", default="development") == "production"
    return env.bool("ZTSP_EMBEDDED", default=not production)


def _postgres_pid(pgdata: Path) -> int | None:
    """Return the pid of the postmaster of ``pgdata`` when it runs, else None."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


class BenchDatabase:
    """A database created for one benchmark run, with Django set up on it.

    Use as a context manager. On entry it creates the database, points
    ``DATABASE_URL`` at it, runs ``django.setup()``, ``migrate_schemas
    --shared`` and ``bootstrap_deployment``. On exit it drops the database,
    deletes the run's cache keys and stops the embedded servers it started.
    """

    def __init__(self):
        self.run_id = secrets.token_hex(4)
        self.name = f"ztsp_bench_{self.run_id}"
        self.server_url = ""
        self.url = ""
        self.cache_prefix = f"ztsp-bench-{self.run_id}"
        self._started_postgres: Path | None = None
        self._started_redis: Path | None = None
        self._embedded_postgres = False
        self._created = False

    def __enter__(self) -> BenchDatabase:
        try:
            self._create()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def _create(self) -> None:
        import psycopg
        from psycopg import sql

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        # Throttle counters and lookup history keys of this run stay apart from any other user of the Redis.
        os.environ["ZTSP_CACHE_PREFIX"] = self.cache_prefix
        os.environ["ZTSP_CELERY_QUEUE"] = self.cache_prefix
        if _embedded_allowed():
            self._start_embedded_servers()
        self.server_url = os.environ.get("DATABASE_URL", "")
        if not self.server_url:
            raise SystemExit("DATABASE_URL is missing and ZTSP_EMBEDDED=0 forbids the embedded server. "
                             "Set DATABASE_URL to a PostgreSQL server URL.")

        with self._admin_connection() as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        self._created = True
        self.url = urlunsplit(urlsplit(self.server_url)._replace(path=f"/{self.name}"))
        os.environ["DATABASE_URL"] = self.url
        print(f"database: {self.name} on {self._server_label()}", flush=True)

        import django
        from django.core.management import call_command

        django.setup()
        started = time.monotonic()
        with open(os.devnull, "w") as devnull:
            call_command("migrate_schemas", "--shared", interactive=False, verbosity=0, stdout=devnull)
            call_command("bootstrap_deployment", stdout=devnull)
        with psycopg.connect(self.libpq_url()) as connection:
            version = connection.execute("SHOW server_version").fetchone()[0]
        print(f"PostgreSQL {version}; migrated in {time.monotonic() - started:.1f} s", flush=True)
        _warn_about_missing_migrations()

    def _start_embedded_servers(self) -> None:
        from config import embedded

        if not os.environ.get("DATABASE_URL"):
            self._embedded_postgres = True
            pgdata = embedded.data_dir() / "postgres"
            if _postgres_pid(pgdata) is None:
                self._started_postgres = pgdata
        if not os.environ.get("REDIS_URL"):
            redis_dir = embedded.data_dir() / "redis"
            if not embedded._redis_answers(embedded._redis_socket_path(redis_dir)):
                self._started_redis = redis_dir
        embedded.ensure_service_urls()

    def _server_label(self) -> str:
        if self._embedded_postgres:
            return f"the embedded PostgreSQL ({'started now' if self._started_postgres else 'already running'})"
        parts = urlsplit(self.server_url)
        host = unquote(parts.hostname or "")
        return f"the Unix socket in {host or 'the default folder'}" if not host or host.startswith("/") \
            else f"{host}:{parts.port or 5432}"

    @contextmanager
    def _admin_connection(self):
        """Connect to a database other than the bench one, to create and drop it."""
        import psycopg

        try:
            connection = psycopg.connect(libpq_url(self.server_url, "postgres"), autocommit=True)
        except psycopg.OperationalError:
            # A server without the "postgres" database: use the database of DATABASE_URL.
            connection = psycopg.connect(libpq_url(self.server_url), autocommit=True)
        try:
            yield connection
        finally:
            connection.close()

    def libpq_url(self) -> str:
        return libpq_url(self.url)

    def __exit__(self, *exc_info) -> None:
        if self._created:
            self._drop()
        self._delete_cache_keys()
        self._stop_embedded_servers()

    def _drop(self) -> None:
        from psycopg import sql

        try:
            from django.db import connections

            connections.close_all()
        except Exception as error:  # The drop below must run whatever state Django is in.
            print(f"closing Django's connections failed: {error}", file=sys.stderr)
        with self._admin_connection() as connection:
            # FORCE (PostgreSQL 13+) ends sessions a crashed server process may have left behind.
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
        self._created = False
        print(f"dropped database {self.name}", flush=True)

    def _delete_cache_keys(self) -> None:
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            return
        import redis

        try:
            client = redis.Redis.from_url(redis_url)
            # django_tenants.cache.make_key writes "<schema>:<prefix>:<version>:<key>".
            keys = list(client.scan_iter(match=f"*:{self.cache_prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
        except redis.RedisError as error:
            print(f"deleting the cache keys of {self.cache_prefix} failed: {error}", file=sys.stderr)

    def _stop_embedded_servers(self) -> None:
        if self._started_redis is not None:
            self._stop_embedded_redis(self._started_redis)
        if self._started_postgres is not None:
            self._stop_embedded_postgres(self._started_postgres)

    def _stop_embedded_redis(self, redis_dir: Path) -> None:
        import redis

        from config import embedded

        _disconnect_django_caches()
        socket_path = embedded._redis_socket_path(redis_dir)
        try:
            client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=5)
            others = len(client.client_list()) - 1
            if others > 0:
                print(f"left the embedded Redis running: {others} other clients are connected", flush=True)
                return
            client.shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # The server closes the connection while it shuts down.
        except redis.RedisError as error:
            print(f"stopping the embedded Redis failed: {error}", file=sys.stderr)
            return
        print("stopped the embedded Redis this benchmark started", flush=True)

    def _stop_embedded_postgres(self, pgdata: Path) -> None:
        pid = _postgres_pid(pgdata)
        if pid is None:
            return
        with self._admin_connection() as connection:
            others = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND pid <> pg_backend_pid()"
            ).fetchone()[0]
        if others:
            print(f"left the embedded PostgreSQL running: {others} other sessions are connected", flush=True)
            return
        # SIGINT is PostgreSQL's "fast" shutdown.
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + EMBEDDED_STOP_TIMEOUT
        while _postgres_pid(pgdata) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        print("stopped the embedded PostgreSQL this benchmark started", flush=True)


def _disconnect_django_caches() -> None:
    """Close this process's Redis connections, which would otherwise count as another client of the server."""
    if "django" not in sys.modules:
        return
    from django.core.cache import caches

    for cache in caches.all(initialized_only=True):
        # Django 5.2's RedisCache has no close() that ends its connection pools, which are in _cache._pools.
        for pool in getattr(getattr(cache, "_cache", None), "_pools", {}).values():
            pool.disconnect()


def _warn_about_missing_migrations() -> None:
    """Print a warning when the models have changes without a migration.

    The run then measures the migrated schema instead of the models, or fails on a missing column.
    """
    from django.core.management import call_command

    try:
        with open(os.devnull, "w") as devnull:
            call_command("makemigrations", "--check", "--dry-run", stdout=devnull)
    except SystemExit:
        print("WARNING: the models have changes without a migration (manage.py makemigrations --check); "
              "the figures below are for the migrated schema, not the models.", flush=True)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so the database is dropped and servers stopped on a plain kill."""

    def handle(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handle)


def checkpoint(cursor) -> None:
    """Run CHECKPOINT, so that a timed step does not pay for writing the dirty pages of the step before.

    CHECKPOINT needs superuser or the pg_checkpoint role. Without them the step runs without it.
    """
    import psycopg

    try:
        cursor.execute("CHECKPOINT")
    except psycopg.errors.InsufficientPrivilege:
        print("note: CHECKPOINT not permitted for this user; timings may include earlier writes", flush=True)


def stop_process_group(process: subprocess.Popen, timeout: float = 15) -> None:
    """Stop a server process started with start_new_session=True, and its children."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    # Worker processes of the group may outlive the main process by a moment.
    while time.monotonic() < deadline and _group_alive(process.pid):
        time.sleep(0.1)
    if _group_alive(process.pid):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _group_alive(group_id: int) -> bool:
    try:
        os.killpg(group_id, 0)
    except ProcessLookupError:
        return False
    return True
