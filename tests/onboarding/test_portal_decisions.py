"""The dashboard's bulk decisions: approve many with tags, reject many with a reason, each invalid field reported."""

from __future__ import annotations

import re
import uuid

from django.test import Client
from django_tenants.utils import schema_context

from tests.conftest import ADMIN_PASSWORD
from tests.onboarding.helpers import onboard

LOGIN_URL = "/accounts/login/"
DECIDE_URL = "/requests/decide"


def signed_in(persona) -> Client:
    client = Client(HTTP_HOST=persona.domain)
    response = client.post(LOGIN_URL, {"username": persona.tenant_admin_username, "password": ADMIN_PASSWORD})
    assert response.status_code == 302, response.content
    return client


def _status(request_id: str) -> str:
    from onboarding.models import OnboardRequest

    with schema_context("acme"):
        return OnboardRequest.objects.get(pk=request_id).status


def _tags(product_id: str) -> set[str]:
    from onboarding.models import EdgeController

    with schema_context("acme"):
        return set(EdgeController.objects.get(product_id=product_id).tags.values_list("name", flat=True))


def _field_errors(html: str, field_id: str) -> str:
    match = re.search(rf'<ul class="errorlist" id="{field_id}_error">(.*?)</ul>', html, re.S)
    return match.group(1) if match else ""


def test_dashboard_shows_last_seen_and_checkboxes(world):
    submitted = onboard(world.a)

    html = signed_in(world.a).get("/").content.decode()

    assert f'name="request_ids" value="{submitted.request_id}" form="bulk-form"' in html
    assert f'<label class="visually-hidden" for="select-{submitted.request_id}">' in html
    assert 'id="bulk-form"' in html


def test_bulk_approve_with_existing_and_new_tags(world):
    from onboarding.models import Tag

    with schema_context("acme"):
        Tag.objects.create(name="lab")
    first, second = onboard(world.a), onboard(world.a)

    response = signed_in(world.a).post(DECIDE_URL, {
        "request_ids": [first.request_id, second.request_id], "decision": "approve",
        "tags": ["lab"], "new_tags": "berlin, rack-7",
    }, follow=True)

    assert response.status_code == 200
    assert "Approved 2" in response.content.decode()
    assert _status(first.request_id) == "approved"
    assert _status(second.request_id) == "approved"
    assert _tags(first.product_id) == {"lab", "berlin", "rack-7"}
    assert _tags(second.product_id) == {"lab", "berlin", "rack-7"}


def test_bulk_reject_with_reason(world):
    from onboarding.models import OnboardRequest

    first, second = onboard(world.a), onboard(world.a)

    response = signed_in(world.a).post(DECIDE_URL, {
        "request_ids": [first.request_id, second.request_id], "decision": "reject", "reason": "unknown device",
    }, follow=True)

    assert "Rejected 2" in response.content.decode()
    with schema_context("acme"):
        for request_id in (first.request_id, second.request_id):
            rejected = OnboardRequest.objects.get(pk=request_id)
            assert rejected.status == "rejected"
            assert rejected.decision_note == "unknown device"
            assert rejected.decided_by == world.a.tenant_admin_username


def test_bulk_reject_without_reason_reports_field(world):
    submitted = onboard(world.a)

    response = signed_in(world.a).post(DECIDE_URL, {"request_ids": [submitted.request_id], "decision": "reject"})

    assert response.status_code == 400
    assert "Enter a reason" in _field_errors(response.content.decode(), "id_reason")
    assert _status(submitted.request_id) == "pending"


def test_bulk_decision_reports_every_invalid_field(world):
    from onboarding.services import TAG_MAX_CHARS

    submitted = onboard(world.a)
    long_tag = "x" * (TAG_MAX_CHARS + 1)

    response = signed_in(world.a).post(DECIDE_URL, {
        "decision": "approve", "tags": ["no-such-tag"], "new_tags": f"ok, {long_tag}, a;b",
    })

    html = response.content.decode()
    assert response.status_code == 400
    assert "No onboard request selected" in html
    assert "does not exist any more" in html
    assert f"use at most {TAG_MAX_CHARS}" in _field_errors(html, "id_new_tags")
    assert _status(submitted.request_id) == "pending"


def test_bulk_decision_without_decision_reported(world):
    submitted = onboard(world.a)

    response = signed_in(world.a).post(DECIDE_URL, {"request_ids": [submitted.request_id], "decision": "maybe"})

    assert response.status_code == 400
    assert "maybe is not a decision" in response.content.decode()
    assert _status(submitted.request_id) == "pending"


def test_bulk_decision_keeps_selection_after_error(world):
    submitted = onboard(world.a)

    response = signed_in(world.a).post(DECIDE_URL, {"request_ids": [submitted.request_id], "decision": "reject"})

    assert f'value="{submitted.request_id}" form="bulk-form" id="select-{submitted.request_id}" checked' in (
        response.content.decode())


def test_bulk_approve_is_all_or_none(world):
    pending, decided = onboard(world.a), onboard(world.a)
    client = signed_in(world.a)
    client.post(f"/requests/{decided.request_id}/reject")

    response = client.post(DECIDE_URL, {"request_ids": [pending.request_id, decided.request_id],
                                        "decision": "approve"})

    assert response.status_code == 400
    assert f"{decided.product_id} (rejected)" in response.content.decode()
    assert _status(pending.request_id) == "pending"


def test_bulk_approve_two_requests_of_same_ec_rejected(world):
    first = onboard(world.a)
    second = onboard(world.a, first.product_id)

    response = signed_in(world.a).post(DECIDE_URL, {"request_ids": [first.request_id, second.request_id],
                                                    "decision": "approve"})

    assert response.status_code == 400
    assert "More than one request selected" in response.content.decode()
    assert _status(first.request_id) == "pending"


def test_bulk_decision_bad_id_reported(world):
    response = signed_in(world.a).post(DECIDE_URL, {"request_ids": ["not-a-uuid"], "decision": "approve"})

    assert response.status_code == 400
    assert "&#x27;not-a-uuid&#x27; is not an onboard request id" in response.content.decode()


def test_bulk_decision_other_tenant_request_not_found(world):
    at_globex = onboard(world.b)

    response = signed_in(world.a).post(DECIDE_URL, {"request_ids": [at_globex.request_id], "decision": "approve"})

    assert response.status_code == 400
    assert "not found in this tenant" in response.content.decode()
    with schema_context("globex"):
        from onboarding.models import OnboardRequest

        assert OnboardRequest.objects.get(pk=at_globex.request_id).status == "pending"


def test_bulk_decision_unknown_id_not_found(world):
    response = signed_in(world.a).post(DECIDE_URL, {"request_ids": [str(uuid.uuid4())], "decision": "reject",
                                                    "reason": "x"})

    assert response.status_code == 400
    assert "not found in this tenant" in response.content.decode()


def test_bulk_decision_anonymous_redirects_to_login(world):
    submitted = onboard(world.a)

    response = Client(HTTP_HOST=world.a.domain).post(DECIDE_URL, {"request_ids": [submitted.request_id],
                                                                 "decision": "approve"})

    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN_URL)
    assert _status(submitted.request_id) == "pending"


def test_bulk_decision_without_csrf_token_rejected(world):
    submitted = onboard(world.a)
    client = Client(HTTP_HOST=world.a.domain, enforce_csrf_checks=True)
    client.get(LOGIN_URL)
    client.post(LOGIN_URL, {"username": world.a.tenant_admin_username, "password": ADMIN_PASSWORD,
                            "csrfmiddlewaretoken": client.cookies["csrftoken"].value})

    response = client.post(DECIDE_URL, {"request_ids": [submitted.request_id], "decision": "approve"})

    assert response.status_code == 403
    assert _status(submitted.request_id) == "pending"


def test_bulk_approve_records_audit_events(world):
    from audit.models import AuditEvent

    submitted = onboard(world.a)

    signed_in(world.a).post(DECIDE_URL, {"request_ids": [submitted.request_id], "decision": "approve"})

    event = AuditEvent.objects.get(action="onboard_request.approve", object_id=submitted.request_id)
    assert event.actor == world.a.tenant_admin_username
    assert event.tenant_schema == "acme"
