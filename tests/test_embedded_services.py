"""The embedded PostgreSQL and Redis that stand in when no server URL is set."""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

import psycopg
import pytest
import redis

from config import embedded


@pytest.fixture(scope="module")
def embedded_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("embedded")
    yield folder
    embedded.stop_embedded_services(folder)


def _connect(url: str) -> psycopg.Connection:
    parts = urlsplit(url)
    return psycopg.connect(host=unquote(parts.hostname or ""), user=parts.username, dbname=parts.path.lstrip("/"))


def test_embedded_postgres_accepts_queries(embedded_dir):
    url = embedded.ensure_postgres(embedded_dir)

    with _connect(url) as connection:
        version = connection.execute("SHOW server_version").fetchone()[0]

    assert url.endswith(f"/{embedded.DATABASE_NAME}")
    assert int(version.split(".")[0]) >= 14


def test_embedded_postgres_is_reused(embedded_dir):
    first = embedded.ensure_postgres(embedded_dir)
    pid_file = embedded_dir / "postgres" / "postmaster.pid"
    pid = pid_file.read_text().split()[0]

    second = embedded.ensure_postgres(embedded_dir)

    assert second == first
    assert pid_file.read_text().split()[0] == pid


def test_embedded_redis_accepts_commands(embedded_dir):
    url = embedded.ensure_redis(embedded_dir)
    client = redis.Redis.from_url(url)

    client.set("ztsp-test", "1")

    assert url.startswith("unix://")
    assert client.get("ztsp-test") == b"1"


def test_embedded_redis_is_reused(embedded_dir):
    first = embedded.ensure_redis(embedded_dir)
    pid = (embedded_dir / "redis" / "redis.pid").read_text().strip()

    second = embedded.ensure_redis(embedded_dir)

    assert second == first
    assert (embedded_dir / "redis" / "redis.pid").read_text().strip() == pid


def test_service_urls_from_environment_are_kept(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://db.example.invalid/ztsp")
    monkeypatch.setenv("REDIS_URL", "redis://cache.example.invalid:6379/0")

    embedded.ensure_service_urls()

    assert os.environ["DATABASE_URL"] == "postgres://db.example.invalid/ztsp"
    assert os.environ["REDIS_URL"] == "redis://cache.example.invalid:6379/0"


def test_stop_embedded_services_stops_both(tmp_path):
    embedded.ensure_postgres(tmp_path)
    redis_url = embedded.ensure_redis(tmp_path)

    embedded.stop_embedded_services(tmp_path)

    assert not (tmp_path / "postgres" / "postmaster.pid").exists()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(redis_url, socket_connect_timeout=1).ping()
