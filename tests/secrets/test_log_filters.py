"""The request-log filter replaces the token of password-reset paths and leaves other paths alone."""

from __future__ import annotations

import logging

from common.log_filters import REDACTED, RedactUrlSecrets, redact_url_secrets

TOKEN = "cx7k2m-0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def test_reset_token_is_redacted():
    assert redact_url_secrets(f"/portal/password-reset/MTI/{TOKEN}/") == f"/portal/password-reset/MTI/{REDACTED}/"


def test_set_password_step_is_kept():
    path = "/portal/password-reset/MTI/set-password/"

    assert redact_url_secrets(path) == path


def test_other_paths_are_kept():
    for path in ("/portal/password-reset/", "/portal/password-reset/sent/", "/api/v1/msp/products?page_size=5"):
        assert redact_url_secrets(path) == path


def test_access_log_record_is_redacted():
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", f"/portal/password-reset/MTI/{TOKEN}/", "1.1", 302), None)

    kept = RedactUrlSecrets().filter(record)

    assert kept
    assert TOKEN not in record.getMessage()
    assert REDACTED in record.getMessage()
