"""Checks of docker-compose.yml and .env.example.

This machine has the docker CLI but no Docker engine and no compose plugin,
so ``docker compose config`` cannot run here; the file is parsed as YAML and
its structure checked instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from config.secrets import SECRET_NAMES

PROJECT_DIR = Path(__file__).resolve().parents[2]
COMPOSE_FILE = PROJECT_DIR / "docker-compose.yml"
ENV_EXAMPLE = PROJECT_DIR / ".env.example"
APP_SERVICES = {"web", "worker", "beat", "gateway", "https"}
ONE_SHOT_SERVICES = {"migrate"}
PUBLISHED_PORTS = {"web": {"8000"}, "gateway": {"8443"}, "https": {"8444"}}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _services(compose) -> dict:
    return compose["services"]


def _healthcheck_command(service: dict) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else test


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def test_compose_has_every_service(compose):
    assert set(_services(compose)) == {"postgres", "redis"} | APP_SERVICES | ONE_SHOT_SERVICES


def test_every_long_running_service_has_healthcheck(compose):
    for name, service in _services(compose).items():
        if name in ONE_SHOT_SERVICES:
            continue
        assert "healthcheck" in service, name
        assert not service["healthcheck"].get("disable"), name
        assert service["healthcheck"]["test"], name


@pytest.mark.parametrize(("service", "expected"), [
    ("postgres", "pg_isready"),
    ("redis", "redis-cli ping"),
    ("web", "/readyz"),
    ("worker", "celery -A config inspect ping"),
    ("gateway", "ops.probe tls 127.0.0.1 8443"),
    ("https", "ops.probe tls 127.0.0.1 8444"),
    ("beat", "ops.probe file /tmp/celerybeat-schedule"),
])
def test_healthcheck_probes_the_service(compose, service, expected):
    assert expected in _healthcheck_command(_services(compose)[service])


def test_one_shot_migrate_runs_once_before_the_apps(compose):
    migrate = _services(compose)["migrate"]

    assert migrate["restart"] == "no"
    assert "migrate_schemas" in " ".join(migrate["command"])
    assert migrate["healthcheck"] == {"disable": True}
    for name in APP_SERVICES:
        assert _services(compose)[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_depends_on_waits_for_healthy_dependencies(compose):
    for name, service in _services(compose).items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions starts before readiness"
        for dependency, condition in depends_on.items():
            expected = "service_completed_successfully" if dependency in ONE_SHOT_SERVICES else "service_healthy"
            assert condition == {"condition": expected}, f"{name} -> {dependency}"
            assert dependency in _services(compose), f"{name} -> {dependency}"


def test_only_web_gateway_and_https_publish_host_ports(compose):
    for name, service in _services(compose).items():
        published = {str(port).rsplit(":", 2)[-2] for port in service.get("ports", [])}
        assert published == PUBLISHED_PORTS.get(name, set()), name


def test_web_port_is_published_on_loopback_only(compose):
    # The web server trusts X-Forwarded-For from its proxy, so a client reaching it directly could forge it.
    assert _services(compose)["web"]["ports"] == ["127.0.0.1:8000:8000"]


def test_app_services_read_env_file(compose):
    for name in APP_SERVICES | ONE_SHOT_SERVICES:
        assert _services(compose)[name]["env_file"] == ".env", name


def test_metrics_ports_stay_on_compose_network(compose):
    services = _services(compose)

    assert services["worker"]["environment"]["ZTSP_WORKER_METRICS_PORT"] == "9101"
    assert services["gateway"]["environment"]["ZTSP_GATEWAY_METRICS_PORT"] == "9102"
    assert "ports" not in services["worker"]


def test_web_turns_off_uvicorn_proxy_headers(compose):
    command = _services(compose)["web"]["command"]

    # uvicorn's own --proxy-headers would read X-Forwarded-For a second time.
    assert "--no-proxy-headers" in command
    assert "--proxy-headers" not in command


def test_env_example_sets_proxy_https_header():
    values = _env_example()

    assert int(values["ZTSP_TRUSTED_PROXY_COUNT"]) > 0
    # Without it, the production HTTPS redirect would loop behind the TLS proxy.
    assert values["DJANGO_SECURE_PROXY_SSL_HEADER"] == "X-Forwarded-Proto,https"


def test_env_example_names_every_secret_without_a_value():
    values = _env_example()

    for name in (*SECRET_NAMES, "ZTSP_METRICS_TOKEN", "POSTGRES_PASSWORD"):
        assert name in values, name
        assert values[name] == "", f"{name} has a value in .env.example; leave secrets empty"


def test_env_example_variables_are_read_by_the_code():
    read_by = (PROJECT_DIR / "config" / "settings.py").read_text() + (PROJECT_DIR / "config" / "secrets.py").read_text()
    compose_text = COMPOSE_FILE.read_text()

    for name in _env_example():
        assert re.search(rf'"{name}"', read_by) or f"${{{name}" in compose_text or name in SECRET_NAMES, name


def test_compose_file_passes_docker_compose_config():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("`docker compose` is not installed here; the structure tests above stand in for it")

    result = subprocess.run([docker, "compose", "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE_FILE), "config",
                             "--quiet"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "POSTGRES_PASSWORD": "placeholder"})

    assert result.returncode == 0, result.stderr
