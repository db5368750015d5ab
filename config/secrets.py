"""Deployment secrets: from the environment, or generated once for development.

Three secrets exist:

* ``DJANGO_SECRET_KEY``: Django's signing key (sessions, CSRF).
* ``ZTSP_DATA_KEYS``: comma-separated Fernet keys that encrypt secrets kept at
  rest (tenant access keys, CA private keys). The first key encrypts; all keys
  decrypt, so a new key can be put in front and old data still reads.
* ``ZTSP_HASH_KEY``: the HMAC key (pepper) for access keys and API tokens,
  which are stored as keyed hashes only.

Each may also be given as a file path in ``<NAME>_FILE``. In production
(``ZTSP_ENV=production``) a missing secret stops start-up. In development the
secrets are generated once and kept in ``.data/dev-secrets.env`` (git-ignored),
never hard-coded, so two development machines never share a key.
"""

from __future__ import annotations

import base64
import fcntl
import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

SECRET_NAMES = ("DJANGO_SECRET_KEY", "ZTSP_DATA_KEYS", "ZTSP_HASH_KEY")


def _generate(name: str) -> str:
    if name == "ZTSP_DATA_KEYS":
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_urlsafe(48)


def _read_dev_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, value = line.partition("=")
            if name and value:
                values[name.strip()] = value.strip()
    return values


def load_secrets(*, production: bool, data_dir: Path) -> dict[str, str]:
    """Return every secret by name, raising ImproperlyConfigured when one is missing."""
    found: dict[str, str] = {}
    for name in SECRET_NAMES:
        if os.environ.get(name):
            found[name] = os.environ[name]
        elif os.environ.get(f"{name}_FILE"):
            found[name] = Path(os.environ[f"{name}_FILE"]).read_text().strip()

    missing = [name for name in SECRET_NAMES if name not in found]
    if not missing:
        return found
    if production:
        raise ImproperlyConfigured(
            f"Missing secrets {', '.join(missing)}: set each as an environment variable "
            "or point <NAME>_FILE at a file that contains it."
        )

    dev_file = data_dir / "dev-secrets.env"
    data_dir.mkdir(parents=True, exist_ok=True)
    # Several processes start at once (web, worker, gateway): one generates, the others read.
    with open(data_dir / "dev-secrets.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        return _fill_from_dev_file(dev_file, missing, found)


def _fill_from_dev_file(dev_file: Path, missing: list[str], found: dict[str, str]) -> dict[str, str]:
    stored = _read_dev_file(dev_file)
    changed = False
    for name in missing:
        if name not in stored:
            stored[name] = _generate(name)
            changed = True
        found[name] = stored[name]
    if changed:
        # Write with mode 0600 from the start because the file contains keys.
        fd = os.open(dev_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("# Development secrets, generated once. Never use in production.\n")
            handle.writelines(f"{name}={value}\n" for name, value in stored.items())
    return found


def parse_data_keys(value: str) -> list[str]:
    """Split ``ZTSP_DATA_KEYS`` into its Fernet keys, raising ImproperlyConfigured for a malformed one."""
    keys = [key.strip() for key in value.split(",") if key.strip()]
    if not keys:
        raise ImproperlyConfigured("ZTSP_DATA_KEYS holds no key; set it to one or more comma-separated Fernet keys.")
    for position, key in enumerate(keys, start=1):
        try:
            decoded = base64.urlsafe_b64decode(key.encode())
        except ValueError:
            decoded = b""
        if len(decoded) != 32:
            raise ImproperlyConfigured(
                f"Key {position} of ZTSP_DATA_KEYS is not a Fernet key (32 bytes, URL-safe base64); "
                "make one with `manage.py rotate_data_keys --generate-key`."
            )
    return keys
