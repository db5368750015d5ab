"""Cookies and stored sessions carry no secret: a key shown once is rendered in the page, not kept for later.

Django's message cookie is signed but readable by anyone who holds it, and
messages that do not fit in it go to the session table, so a secret put in
a message would outlive the page that shows it.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.messages.storage.cookie import CookieStorage
from django.http import HttpRequest
from django_tenants.utils import schema_context

from tests.secrets.scanning import find_secrets

pytestmark = pytest.mark.e2e


def _needles_but_session_ids(secret_flow):
    # A session cookie's value is its session id, which is what the cookie is for.
    return [needle for needle in secret_flow.registry.needles if "session id" not in needle.kind]


def _clients(secret_flow):
    return {"admin": secret_flow.admin_session, "portal": secret_flow.portal_session,
            "director": secret_flow.director_session}


def test_cookies_carry_no_secret(secret_flow):
    needles = _needles_but_session_ids(secret_flow)
    findings = []
    for client_name, client in _clients(secret_flow).items():
        assert client.set_cookie_log, f"the {client_name} client got no cookie"
        for name, value in client.set_cookie_log:
            where = f"cookie {name} set for the {client_name} client"
            findings += find_secrets(value, needles, where=where)
            if name == "messages" and value:
                decoded = CookieStorage(HttpRequest())._decode(value) or []
                findings += find_secrets("\n".join(str(message) for message in decoded), needles, where=where)

    assert not findings, "secrets found:\n" + "\n".join(findings)


def test_stored_sessions_hold_no_secret(secret_flow, committed):
    from django.contrib.sessions.models import Session

    needles = _needles_but_session_ids(secret_flow)
    findings = []
    for schema_name in ("public", secret_flow.schema_name):
        with schema_context(schema_name):
            sessions = list(Session.objects.all())
            assert sessions or schema_name != "public", "no session stored in the public schema"
            for session in sessions:
                text = json.dumps(session.get_decoded(), default=str)
                findings += find_secrets(text, needles, where=f"a session in {schema_name}")

    assert not findings, "secrets found:\n" + "\n".join(findings)
