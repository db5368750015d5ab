"""The tenant admin's web pages: sign-in, the onboarding dashboard and its decision forms."""

from __future__ import annotations

import re
import uuid

from django.test import Client
from django_tenants.utils import schema_context

from tests.conftest import ADMIN_PASSWORD
from tests.onboarding.helpers import active_certificates, approve_and_issue, onboard

LOGIN_URL = "/accounts/login/"


def _signed_in(persona) -> Client:
    """Sign the persona's tenant admin in through the login form and return the browser."""
    client = Client(HTTP_HOST=persona.domain)
    response = client.post(LOGIN_URL, {"username": persona.tenant_admin_username, "password": ADMIN_PASSWORD})
    assert response.status_code == 302, response.content
    return client


def _row(html: str, product_id: str, table: str = "pending") -> str:
    """Return the markup of the dashboard table row for ``product_id``, or "" when it is absent."""
    section = re.search(rf'<table id="{table}">(.*?)</table>', html, re.S)
    if section is None:
        return ""
    match = re.search(rf'<tr data-product-id="{re.escape(product_id)}">(.*?)</tr>', section.group(1), re.S)
    return match.group(1) if match else ""


def _status(schema: str, request_id: str) -> str:
    from onboarding.models import OnboardRequest

    with schema_context(schema):
        return OnboardRequest.objects.get(pk=request_id).status


def test_login_signs_in_tenant_admin(world):
    client = Client(HTTP_HOST=world.a.domain)

    response = client.post(LOGIN_URL, {"username": world.a.tenant_admin_username, "password": ADMIN_PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_login_ignores_next_on_other_host(world):
    client = Client(HTTP_HOST=world.a.domain)

    response = client.post(f"{LOGIN_URL}?next=http://{world.b.domain}/",
                           {"username": world.a.tenant_admin_username, "password": ADMIN_PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/"


def test_login_page_renders(world):
    response = Client(HTTP_HOST=world.a.domain).get(LOGIN_URL)

    assert response.status_code == 200
    assert b'name="username"' in response.content
    assert b'name="password"' in response.content


def test_login_other_tenant_admin_fails(world):
    client = Client(HTTP_HOST=world.a.domain)

    response = client.post(LOGIN_URL, {"username": world.b.tenant_admin_username, "password": ADMIN_PASSWORD})

    assert response.status_code == 200
    assert b"wrong" in response.content
    assert client.get("/").status_code == 302


def test_login_msp_user_fails_at_tenant(world):
    client = Client(HTTP_HOST=world.a.domain)

    response = client.post(LOGIN_URL, {"username": world.a.msp_user.username, "password": ADMIN_PASSWORD})

    assert response.status_code == 200
    assert client.get("/").status_code == 302


def test_session_of_one_tenant_is_invalid_at_other(world):
    client = _signed_in(world.a)

    # The test client sends its cookies to every host, as a shared parent domain would.
    response = client.get("/", HTTP_HOST=world.b.domain)

    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN_URL)


def test_dashboard_anonymous_redirects_to_login(world):
    response = Client(HTTP_HOST=world.a.domain).get("/")

    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN_URL}?next=/"


def test_dashboard_lists_pending_ec(world):
    submitted = onboard(world.a, facts={"firmware": "1.2.0", "serial": "SN-77"})
    with schema_context("acme"):
        from onboarding.models import EdgeController

        first_seen = EdgeController.objects.get(product_id=submitted.product_id).first_seen_at

    response = _signed_in(world.a).get("/")

    assert response.status_code == 200
    row = _row(response.content.decode(), submitted.product_id)
    assert submitted.product_id in row
    assert "firmware: 1.2.0" in row
    assert "serial: SN-77" in row
    assert "127.0.0.1" in row
    assert first_seen.strftime("%Y-%m-%d %H:%M:%S") in row
    assert "New key" not in row


def test_dashboard_flags_conflict(world):
    first = onboard(world.a)
    onboard(world.a, first.product_id)

    html = _signed_in(world.a).get("/").content.decode()

    rows = re.findall(rf'<tr data-product-id="{re.escape(first.product_id)}">(.*?)</tr>', html, re.S)
    assert len(rows) == 2
    assert sum("Enrolling again" in row for row in rows) == 1


def test_dashboard_flags_key_change_of_onboarded_ec(world):
    first = onboard(world.a)
    approve_and_issue("acme", first.request_id)
    onboard(world.a, first.product_id)

    html = _signed_in(world.a).get("/").content.decode()

    rows = re.findall(rf'<tr data-product-id="{re.escape(first.product_id)}">(.*?)</tr>', html, re.S)
    pending = [row for row in rows if 'name="request_ids"' in row]
    assert len(pending) == 1
    assert "New key" in pending[0]


def test_dashboard_hides_other_tenant_ec(world):
    at_globex = onboard(world.b)

    html = _signed_in(world.a).get("/").content.decode()

    assert at_globex.product_id not in html


def test_dashboard_lists_onboarded_ec(world):
    submitted = onboard(world.a)
    approve_and_issue("acme", submitted.request_id, tags=["berlin"])
    [certificate] = active_certificates("acme", submitted.product_id)

    html = _signed_in(world.a).get("/").content.decode()

    assert _row(html, submitted.product_id) == ""
    row = _row(html, submitted.product_id, table="onboarded")
    assert "berlin" in row
    assert certificate.serial_hex in row


def test_approve_form_approves_with_tags(world):
    from onboarding.models import EdgeController

    submitted = onboard(world.a)
    client = _signed_in(world.a)

    response = client.post(f"/requests/{submitted.request_id}/approve", {"tags": "berlin; rack-2, ,"},
                           follow=True)

    assert response.status_code == 200
    assert f"Approved {submitted.product_id}" in response.content.decode()
    assert _status("acme", submitted.request_id) == "approved"
    with schema_context("acme"):
        controller = EdgeController.objects.get(product_id=submitted.product_id)
        assert set(controller.tags.values_list("name", flat=True)) == {"berlin", "rack-2"}


def test_reject_form_rejects(world):
    submitted = onboard(world.a)
    client = _signed_in(world.a)

    response = client.post(f"/requests/{submitted.request_id}/reject", follow=True)

    assert response.status_code == 200
    assert f"Rejected {submitted.product_id}" in response.content.decode()
    assert _status("acme", submitted.request_id) == "rejected"


def test_second_decision_shows_error(world):
    submitted = onboard(world.a)
    client = _signed_in(world.a)
    client.post(f"/requests/{submitted.request_id}/reject")

    response = client.post(f"/requests/{submitted.request_id}/approve", follow=True)

    assert "not pending" in response.content.decode()
    assert _status("acme", submitted.request_id) == "rejected"


def test_unknown_decision_returns_404(world):
    submitted = onboard(world.a)
    client = _signed_in(world.a)

    response = client.post(f"/requests/{submitted.request_id}/delete")

    assert response.status_code == 404
    assert _status("acme", submitted.request_id) == "pending"


def test_decision_by_get_is_not_allowed(world):
    submitted = onboard(world.a)

    response = _signed_in(world.a).get(f"/requests/{submitted.request_id}/approve")

    assert response.status_code == 405
    assert _status("acme", submitted.request_id) == "pending"


def test_decision_anonymous_redirects_to_login(world):
    submitted = onboard(world.a)

    response = Client(HTTP_HOST=world.a.domain).post(f"/requests/{submitted.request_id}/approve")

    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN_URL)
    assert _status("acme", submitted.request_id) == "pending"


def _signed_in_checking_csrf(persona) -> Client:
    """Sign in as a browser does: read the login form's CSRF token, then post it back."""
    client = Client(HTTP_HOST=persona.domain, enforce_csrf_checks=True)
    client.get(LOGIN_URL)
    response = client.post(LOGIN_URL, {"username": persona.tenant_admin_username, "password": ADMIN_PASSWORD,
                                       "csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert response.status_code == 302, response.content
    return client


def test_decision_without_csrf_token_rejected(world):
    submitted = onboard(world.a)
    client = _signed_in_checking_csrf(world.a)

    response = client.post(f"/requests/{submitted.request_id}/approve", {"tags": "x"})

    assert response.status_code == 403
    assert _status("acme", submitted.request_id) == "pending"


def test_decision_with_csrf_token_from_dashboard(world):
    submitted = onboard(world.a)
    client = _signed_in_checking_csrf(world.a)
    row = _row(client.get("/").content.decode(), submitted.product_id)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', row).group(1)

    response = client.post(f"/requests/{submitted.request_id}/approve",
                           {"tags": "x", "csrfmiddlewaretoken": token})

    assert response.status_code == 302
    assert _status("acme", submitted.request_id) == "approved"


def test_decision_unknown_request_returns_404(world):
    response = _signed_in(world.a).post(f"/requests/{uuid.uuid4()}/approve")

    assert response.status_code == 404


def test_decision_other_tenant_request_returns_404(world):
    at_globex = onboard(world.b)

    response = _signed_in(world.a).post(f"/requests/{at_globex.request_id}/approve")

    assert response.status_code == 404
    assert _status("globex", at_globex.request_id) == "pending"
