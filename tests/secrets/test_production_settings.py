"""Production settings (ZTSP_ENV=production, as the Docker image sets) pass Django's deployment checks.

Each test starts a fresh interpreter with ``config.settings`` and a
production environment: generated secrets of full length, production host names,
and the test run's PostgreSQL and Redis URLs.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys

from django.conf import settings

from tests.conftest import PROJECT_DIR, _database_url

# Variables of the test run that a production process would not have.
DEVELOPMENT_ONLY = ("DJANGO_DEBUG", "ZTSP_DATA_DIR")


def _production_env(**overrides: str) -> dict:
    env = {name: value for name, value in os.environ.items() if name not in DEVELOPMENT_ONLY}
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "ZTSP_ENV": "production",
        "ZTSP_EMBEDDED": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "ZTSP_DATA_KEYS": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "ZTSP_HASH_KEY": secrets.token_urlsafe(48),
        "DJANGO_ALLOWED_HOSTS": "provision.example.com,.director.example.com",
        "ZTSP_PUBLIC_HOSTS": "provision.example.com",
        "ZTSP_DIRECTOR_SCHEME": "https",
        "ZTSP_DIRECTOR_PORT": "443",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
    })
    env.update(overrides)
    return env


def _run(arguments: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *arguments], cwd=PROJECT_DIR, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def _setting(name: str, env: dict) -> str:
    code = f"import django; django.setup(); from django.conf import settings; print(repr(settings.{name}))"
    completed = _run(["-c", code], env)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout.strip()


def test_check_deploy_passes_in_production():
    completed = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _production_env())

    assert completed.returncode == 0, completed.stdout + completed.stderr[-3000:]


def test_check_deploy_fails_without_ssl_redirect():
    """The check above can fail: turning one protection off is reported."""
    completed = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                     _production_env(DJANGO_SECURE_SSL_REDIRECT="0"))

    assert completed.returncode != 0
    assert "security.W008" in completed.stdout + completed.stderr


def test_proxy_ssl_header_is_read_from_environment():
    env = _production_env(DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto,https")

    assert _setting("SECURE_PROXY_SSL_HEADER", env) == "('HTTP_X_FORWARDED_PROTO', 'https')"


def test_malformed_proxy_ssl_header_stops_start_up():
    completed = _run(["manage.py", "check"], _production_env(DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto"))

    assert completed.returncode != 0
    assert "DJANGO_SECURE_PROXY_SSL_HEADER must be HEADER,VALUE" in completed.stderr


def test_production_email_is_not_printed_to_log():
    """Password-set links are secrets, so production never defaults to the console email backend."""
    assert _setting("EMAIL_BACKEND", _production_env()) == "'django.core.mail.backends.smtp.EmailBackend'"


def test_email_url_sets_smtp_server():
    env = _production_env(EMAIL_URL="smtp+tls://mailer:app-password@mail.example.com:587")

    assert _setting("EMAIL_HOST", env) == "'mail.example.com'"
    assert _setting("EMAIL_PORT", env) == "587"
    assert _setting("EMAIL_USE_TLS", env) == "True"
