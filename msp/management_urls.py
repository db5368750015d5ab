"""Validating and normalising a tenant's management URL (its ``director_url``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

_url_validator = URLValidator(schemes=["http", "https"])


class InvalidManagementUrl(ValueError):
    pass


def normalize_management_url(value: str) -> str:
    """Return ``value`` as ``scheme://host[:port]`` with a lower-case host.

    A management URL names a Director tenant's host, so a path, query,
    fragment or user info is rejected rather than silently dropped. Plain
    ``http`` is accepted only outside production.
    """
    text = (value or "").strip()
    try:
        _url_validator(text)
    except ValidationError as error:
        raise InvalidManagementUrl(f"{text!r} is not a valid http(s) URL like https://acme.director.example") from error
    parts = urlsplit(text)
    if parts.username or parts.password:
        raise InvalidManagementUrl(f"{text!r} contains user info; give only scheme, host and port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidManagementUrl(f"{text!r} has a path, query or fragment; give only scheme, host and port")
    if parts.scheme == "http" and settings.PRODUCTION:
        raise InvalidManagementUrl(f"{text!r} uses http; production Directors must use https")
    host = (parts.hostname or "").lower()
    default_port = {"http": 80, "https": 443}[parts.scheme]
    port = f":{parts.port}" if parts.port and parts.port != default_port else ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}"
