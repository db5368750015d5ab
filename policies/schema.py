"""The JSON Schema of an EC configuration document, and its validation.

Every key is optional, and an unknown key is an error so that a typo does
not reach the fleet unnoticed. A policy body, a manual configuration and the
merged desired document all follow this schema:

* ``hostname``: an RFC 1123 host label, at most 63 characters;
* ``timezone``: an IANA time zone name such as ``Europe/Paris``;
* ``ntp_servers`` and ``dns_servers``: up to 8 host names or IP addresses;
* ``vlans``: up to 64 objects ``{"id": 1-4094, "name", "subnet"}``, ``subnet`` in CIDR notation;
* ``syslog``: ``{"server", "port": 1-65535, "protocol": udp|tcp|tls, "level"}``, ``server`` required.
"""

from __future__ import annotations

import json
import re

from jsonschema import Draft202012Validator, FormatChecker

# The tunnel carries at most 64 KiB per message (gateway.server.MAX_LINE_BYTES);
# a body this size leaves room for the message envelope.
MAX_BODY_BYTES = 32 * 1024

_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")

_HOST = {"type": "string", "minLength": 1, "maxLength": 253, "pattern": r"^[A-Za-z0-9.:_-]+$"}

EC_CONFIG_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Edge Controller configuration",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "hostname": {"type": "string", "pattern": r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"},
        "timezone": {"type": "string", "pattern": r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", "maxLength": 64},
        "ntp_servers": {"type": "array", "items": _HOST, "maxItems": 8, "uniqueItems": True},
        "dns_servers": {"type": "array", "items": _HOST, "maxItems": 8, "uniqueItems": True},
        "vlans": {
            "type": "array",
            "maxItems": 64,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id"],
                "properties": {
                    "id": {"type": "integer", "minimum": 1, "maximum": 4094},
                    "name": {"type": "string", "maxLength": 64},
                    "subnet": {"type": "string", "pattern": r"^[0-9A-Fa-f.:]+/[0-9]{1,3}$"},
                },
            },
        },
        "syslog": {
            "type": "object",
            "additionalProperties": False,
            "required": ["server"],
            "properties": {
                "server": _HOST,
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "protocol": {"enum": ["udp", "tcp", "tls"]},
                "level": {"enum": ["debug", "info", "notice", "warning", "error", "critical"]},
            },
        },
    },
}

_validator = Draft202012Validator(EC_CONFIG_SCHEMA, format_checker=FormatChecker())


class InvalidConfig(ValueError):
    """A configuration body that breaks the schema; ``errors`` maps each bad path to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{path}: {', '.join(messages)}" for path, messages in errors.items()))


def _path(prefix: str, error) -> str:
    return ".".join([prefix, *(str(part) for part in error.absolute_path)])


def _control_character_errors(body, field: str) -> dict[str, list[str]]:
    """Return an error for each string in ``body`` that contains a control character, keyed by its path.

    Python's ``re``, which jsonschema uses, lets ``$`` match before a final
    newline, so the schema's patterns alone accept "edge1\\n". PostgreSQL jsonb
    cannot store NUL at all. The walk uses a stack, because a body may nest
    deeper than Python's recursion limit allows.
    """
    errors: dict[str, list[str]] = {}
    pending = [(field, body)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            if _CONTROL_CHARACTER.search(item):
                errors[path] = ["Control characters such as newline or NUL are not allowed."]
        elif isinstance(item, dict):
            for key, value in item.items():
                pending.append((f"{path}.{key}", key))
                pending.append((f"{path}.{key}", value))
        elif isinstance(item, list):
            pending.extend((f"{path}.{index}", value) for index, value in enumerate(item))
    return errors


def validate_config_body(body, *, field: str = "body") -> dict:
    """Return ``body`` when it is a valid EC configuration; raise InvalidConfig listing every error otherwise.

    Error paths start with ``field`` and name the item, as in ``body.vlans.0.id``.
    """
    errors = _control_character_errors(body, field)
    for error in sorted(_validator.iter_errors(body), key=lambda item: list(map(str, item.absolute_path))):
        errors.setdefault(_path(field, error), []).append(error.message)
    if errors:
        raise InvalidConfig(errors)
    size = len(json.dumps(body, separators=(",", ":")).encode())
    if size > MAX_BODY_BYTES:
        raise InvalidConfig({field: [f"The body is {size} bytes; the maximum is {MAX_BODY_BYTES} bytes."]})
    return body
