"""The onboarded list (filters, live status JSON), the EC detail page, revocation and decommissioning."""

from __future__ import annotations

import re

from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from tests.onboarding.helpers import active_certificates, approve_and_issue, onboard, reject
from tests.onboarding.test_portal_decisions import signed_in

STATUS_URL = "/controllers/status"


def _onboarded(persona, schema: str, tags=()):
    submitted = onboard(persona)
    approve_and_issue(schema, submitted.request_id, tags=tags)
    return submitted, _controller(schema, submitted.product_id)


def _controller(schema: str, product_id: str):
    from onboarding.models import EdgeController

    with schema_context(schema):
        return EdgeController.objects.get(product_id=product_id)


def _set_tunnel(schema: str, product_id: str, **fields) -> None:
    from onboarding.models import EdgeController

    with schema_context(schema):
        EdgeController.objects.filter(product_id=product_id).update(**fields)


def _onboarded_rows(html: str) -> list[str]:
    section = re.search(r'<table id="onboarded">(.*?)</table>', html, re.S).group(1)
    return re.findall(r'<tr data-product-id="([^"]+)">', section)


def _field_errors(html: str, field_id: str) -> str:
    match = re.search(rf'<ul class="errorlist" id="{field_id}_error">(.*?)</ul>', html, re.S)
    return match.group(1) if match else ""


def test_onboarded_list_filters_by_tag(world):
    berlin, _ = _onboarded(world.a, "acme", tags=["berlin"])
    paris, _ = _onboarded(world.a, "acme", tags=["paris"])

    rows = _onboarded_rows(signed_in(world.a).get("/", {"tag": "berlin"}).content.decode())

    assert berlin.product_id in rows
    assert paris.product_id not in rows


def test_onboarded_list_filters_by_status(world):
    online, _ = _onboarded(world.a, "acme")
    offline, _ = _onboarded(world.a, "acme")
    never, _ = _onboarded(world.a, "acme")
    now = timezone.now()
    _set_tunnel("acme", online.product_id, online=True, tunnel_connected_at=now)
    _set_tunnel("acme", offline.product_id, online=False, tunnel_connected_at=now, tunnel_disconnected_at=now)
    client = signed_in(world.a)

    for status, expected in (("online", online), ("offline", offline), ("never", never)):
        rows = _onboarded_rows(client.get("/", {"status": status}).content.decode())
        others = {online.product_id, offline.product_id, never.product_id} - {expected.product_id}
        assert expected.product_id in rows, status
        assert not others & set(rows), status


def test_onboarded_list_reports_invalid_filters(world):
    html = signed_in(world.a).get("/", {"tag": "no-such-tag", "status": "sleeping"}).content.decode()

    assert "No tag with that name" in _field_errors(html, "id_tag")
    assert "sleeping is not a status" in _field_errors(html, "id_status")


def test_onboarded_list_shows_certificate_and_status(world):
    submitted, controller = _onboarded(world.a, "acme")
    [certificate] = active_certificates("acme", submitted.product_id)

    html = signed_in(world.a).get("/").content.decode()

    row = re.search(rf'<tr data-product-id="{re.escape(submitted.product_id)}">(.*?)</tr>', html, re.S).group(1)
    assert certificate.serial_hex in row
    assert certificate.not_after.strftime("%Y-%m-%d") in row
    assert f'data-controller-id="{controller.pk}"><span class="never">never connected</span>' in row
    assert '<script src="/static/onboarding/live-status.js" defer></script>' in html


def test_pages_have_no_inline_script(world):
    _submitted, controller = _onboarded(world.a, "acme")
    client = signed_in(world.a)

    for url in ("/", "/tags/", f"/controllers/{controller.pk}/", "/accounts/login/"):
        html = client.get(url).content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), url
        assert " onclick=" not in html, url
        assert "<style" not in html, url


def test_status_json_reports_tunnel_state(world):
    submitted, controller = _onboarded(world.a, "acme")
    heartbeat = timezone.now()
    _set_tunnel("acme", submitted.product_id, online=True, tunnel_connected_at=heartbeat,
                last_heartbeat_at=heartbeat)

    response = signed_in(world.a).get(STATUS_URL, {"ids": str(controller.pk)})

    assert response.status_code == 200
    [row] = response.json()["controllers"]
    assert row["id"] == controller.pk
    assert row["product_id"] == submitted.product_id
    assert row["status"] == "online"
    assert row["last_heartbeat_at"] == heartbeat.isoformat()


def test_status_json_hides_other_tenant_ec(world):
    _submitted, at_globex = _onboarded(world.b, "globex")

    response = signed_in(world.a).get(STATUS_URL, {"ids": str(at_globex.pk)})

    assert response.status_code == 200
    assert all(row["product_id"] != at_globex.product_id for row in response.json()["controllers"])


def test_status_json_anonymous_returns_401(world):
    response = Client(HTTP_HOST=world.a.domain).get(STATUS_URL, {"ids": "1"})

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_status_json_bad_ids_returns_400(world):
    response = signed_in(world.a).get(STATUS_URL, {"ids": "1,two"})

    assert response.status_code == 400
    assert "'two' is not one" in response.json()["detail"]


def test_status_json_session_of_other_tenant_returns_401(world):
    client = signed_in(world.a)

    response = client.get(STATUS_URL, {"ids": "1"}, HTTP_HOST=world.b.domain)

    assert response.status_code == 401


def test_detail_shows_facts_certificates_and_timeline(world):
    submitted, controller = _onboarded(world.a, "acme", tags=["berlin"])
    [certificate] = active_certificates("acme", submitted.product_id)
    now = timezone.now()
    _set_tunnel("acme", submitted.product_id, online=False, tunnel_connected_at=now, tunnel_disconnected_at=now)

    response = signed_in(world.a).get(f"/controllers/{controller.pk}/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "firmware" in html
    assert '<span class="badge">berlin</span>' in html
    assert f'<tr data-serial="{certificate.serial_hex}">' in html
    timeline = re.search(r'<ol class="timeline panel" id="timeline" reversed>(.*?)</ol>', html, re.S).group(1)
    kinds = re.findall(r'data-kind="([^"]+)"', timeline)
    assert set(kinds) == {"requested", "approved", "issued", "tunnel-up", "tunnel-down"}
    assert "by onboarding-tests" in timeline


def test_detail_timeline_shows_rejection(world):
    submitted = onboard(world.a)
    reject("acme", submitted.request_id)
    controller = _controller("acme", submitted.product_id)

    html = signed_in(world.a).get(f"/controllers/{controller.pk}/").content.decode()

    assert 'data-kind="rejected"' in html


def test_detail_of_other_tenant_ec_returns_404(world):
    from onboarding.models import EdgeController

    with schema_context("acme"):
        acme_ids = set(EdgeController.objects.values_list("pk", flat=True))
    # ECs committed by other tests may share ids across schemas; pick an id that acme lacks.
    _submitted, at_globex = _onboarded(world.b, "globex")
    while at_globex.pk in acme_ids:
        _submitted, at_globex = _onboarded(world.b, "globex")
    client = signed_in(world.a)

    assert client.get(f"/controllers/{at_globex.pk}/").status_code == 404
    assert client.post(f"/controllers/{at_globex.pk}/revoke", {"reason": "key_compromise"}).status_code == 404
    assert client.post(f"/controllers/{at_globex.pk}/decommission", {"confirm": "on"}).status_code == 404
    assert active_certificates("globex", at_globex.product_id)


def test_detail_anonymous_redirects_to_login(world):
    _submitted, controller = _onboarded(world.a, "acme")

    response = Client(HTTP_HOST=world.a.domain).get(f"/controllers/{controller.pk}/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_revoke_revokes_active_certificate(world):
    from audit.models import AuditEvent

    submitted, controller = _onboarded(world.a, "acme")
    [certificate] = active_certificates("acme", submitted.product_id)

    response = signed_in(world.a).post(f"/controllers/{controller.pk}/revoke", {"reason": "key_compromise"},
                                       follow=True)

    html = response.content.decode()
    assert f"Revoked certificate {certificate.serial_hex}" in html
    assert active_certificates("acme", submitted.product_id) == []
    assert 'data-kind="revoked"' in html
    event = AuditEvent.objects.get(action="certificate.revoke", object_id=certificate.serial_hex)
    assert event.actor == world.a.tenant_admin_username
    assert event.details["reason"] == "key_compromise"


def test_revoke_reports_invalid_reason(world):
    submitted, controller = _onboarded(world.a, "acme")

    response = signed_in(world.a).post(f"/controllers/{controller.pk}/revoke", {"reason": "superseded"})

    assert response.status_code == 400
    assert "superseded is not a revocation reason" in _field_errors(response.content.decode(), "id_reason")
    assert active_certificates("acme", submitted.product_id)


def test_revoke_without_certificate_shows_error(world):
    _submitted, controller = _onboarded(world.a, "acme")
    client = signed_in(world.a)
    client.post(f"/controllers/{controller.pk}/revoke", {"reason": "key_compromise"})

    response = client.post(f"/controllers/{controller.pk}/revoke", {"reason": "key_compromise"}, follow=True)

    assert "has no active certificate" in response.content.decode()


def test_decommission_revokes_and_marks_ec(world):
    submitted, controller = _onboarded(world.a, "acme")
    later = onboard(world.a, submitted.product_id)

    response = signed_in(world.a).post(f"/controllers/{controller.pk}/decommission",
                                       {"confirm": "on", "reason": "returned to vendor"}, follow=True)

    html = response.content.decode()
    assert f"Decommissioned {submitted.product_id}" in html
    assert _controller("acme", submitted.product_id).state == "decommissioned"
    assert active_certificates("acme", submitted.product_id) == []
    assert 'data-kind="decommissioned"' in html
    from onboarding.models import OnboardRequest

    with schema_context("acme"):
        assert OnboardRequest.objects.get(pk=later.request_id).status == "rejected"
    assert submitted.product_id not in _onboarded_rows(signed_in(world.a).get("/").content.decode())


def test_decommission_reports_every_invalid_field(world):
    submitted, controller = _onboarded(world.a, "acme")

    response = signed_in(world.a).post(f"/controllers/{controller.pk}/decommission", {"reason": "r" * 501})

    html = response.content.decode()
    assert response.status_code == 400
    assert "Tick the confirmation box" in _field_errors(html, "id_confirm")
    assert "at most 500 characters" in _field_errors(html, "id_reason")
    assert _controller("acme", submitted.product_id).state == "onboarded"


def test_decommission_twice_shows_error(world):
    _submitted, controller = _onboarded(world.a, "acme")
    client = signed_in(world.a)
    client.post(f"/controllers/{controller.pk}/decommission", {"confirm": "on"})

    response = client.post(f"/controllers/{controller.pk}/decommission", {"confirm": "on"}, follow=True)

    assert "already decommissioned" in response.content.decode()


def test_decommissioned_ec_can_request_again(world):
    from onboarding.models import OnboardRequest

    submitted, controller = _onboarded(world.a, "acme")
    signed_in(world.a).post(f"/controllers/{controller.pk}/decommission", {"confirm": "on"})

    again = onboard(world.a, submitted.product_id)

    with schema_context("acme"):
        request = OnboardRequest.objects.get(pk=again.request_id)
        assert request.status == "pending"
        assert request.conflict is True
