"""Log filters that keep secrets carried in URLs out of request logs.

A password-reset link carries a token in its path
(``/portal/password-reset/<uidb64>/<token>/``) that sets the account's
password until it is used or expires, and the web server's access log
records every path it serves.
"""

from __future__ import annotations

import logging
import re

# The token segment after the user id; Django's form step is "set-password" and keeps no token.
PASSWORD_RESET_TOKEN_RE = re.compile(r"(/password-reset/[^/?\s]+/)(?!set-password/)[^/?\s\"]+")
REDACTED = "<redacted>"


def redact_url_secrets(text: str) -> str:
    """Return ``text`` with the token of every password-reset path replaced."""
    return PASSWORD_RESET_TOKEN_RE.sub(rf"\1{REDACTED}", text)


class RedactUrlSecrets(logging.Filter):
    """A filter that replaces URL secrets in a record's message and string arguments and keeps every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_url_secrets(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url_secrets(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def install_url_secret_filters() -> None:
    """Attach :class:`RedactUrlSecrets` to the loggers that record request paths.

    ``uvicorn.access`` logs the path of every request, ``django.request``
    the path of each 4xx and 5xx. A logger filter applies only to records logged
    on that logger itself, so each one is named here.
    """
    for name in ("uvicorn.access", "django.request"):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactUrlSecrets) for existing in logger.filters):
            logger.addFilter(RedactUrlSecrets())
