"""The tenant admin's onboarding API under ``/api/v1/director/``, signed in with HTTP Basic."""

from __future__ import annotations

import uuid

import pytest
from django_tenants.utils import schema_context

from tests.conftest import ADMIN_PASSWORD, client_for
from tests.onboarding.helpers import (
    CONTROLLERS_URL,
    REQUESTS_URL,
    approve_and_issue,
    basic,
    onboard,
    row_counts,
)


def _as_admin(persona, host: str | None = None):
    client = client_for(host or persona.domain)
    client.credentials(**basic(persona.tenant_admin_username))
    return client


def _results(response) -> list[dict]:
    data = response.json()
    # The list is paginated when the project sets a page size, and a plain list otherwise.
    return data["results"] if isinstance(data, dict) else data


def _status(schema: str, request_id: str) -> str:
    from onboarding.models import OnboardRequest

    with schema_context(schema):
        return OnboardRequest.objects.get(pk=request_id).status


def test_list_returns_tenant_requests(world):
    submitted = onboard(world.a, facts={"firmware": "3.1"})

    response = _as_admin(world.a).get(REQUESTS_URL)

    assert response.status_code == 200
    [item] = [item for item in _results(response) if item["request_id"] == submitted.request_id]
    assert item["product_id"] == submitted.product_id
    assert item["status"] == "pending"
    assert item["conflict"] is False
    assert item["facts"] == {"firmware": "3.1"}
    assert item["source_address"] == "127.0.0.1"


def test_list_filters_by_status(world):
    pending = onboard(world.a)
    issued = onboard(world.a)
    approve_and_issue("acme", issued.request_id)

    response = _as_admin(world.a).get(REQUESTS_URL, {"status": "pending"})

    ids = {item["request_id"] for item in _results(response)}
    assert pending.request_id in ids
    assert issued.request_id not in ids
    assert {item["status"] for item in _results(response)} == {"pending"}


def test_list_shows_conflict_flag(world):
    first = onboard(world.a)
    second = onboard(world.a, first.product_id)

    response = _as_admin(world.a).get(REQUESTS_URL, {"status": "pending"})

    flags = {item["request_id"]: item["conflict"] for item in _results(response)}
    assert flags[first.request_id] is False
    assert flags[second.request_id] is True


def test_list_excludes_other_tenant_requests(world):
    at_globex = onboard(world.b)

    response = _as_admin(world.a).get(REQUESTS_URL)

    assert at_globex.request_id not in {item["request_id"] for item in _results(response)}


def test_approve_with_tags(world):
    submitted = onboard(world.a)

    response = _as_admin(world.a).post(f"{REQUESTS_URL}/{submitted.request_id}/approve",
                                       {"tags": ["berlin", "rack-2"], "note": "known site"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "approved"
    assert response.json()["decided_by"] == world.a.tenant_admin_username
    assert response.json()["decision_note"] == "known site"
    assert _status("acme", submitted.request_id) == "approved"
    controllers = _results(_as_admin(world.a).get(CONTROLLERS_URL))
    [controller] = [item for item in controllers if item["product_id"] == submitted.product_id]
    assert sorted(controller["tags"]) == ["berlin", "rack-2"]


def test_approve_without_body(world):
    submitted = onboard(world.a)

    response = _as_admin(world.a).post(f"{REQUESTS_URL}/{submitted.request_id}/approve", {}, format="json")

    assert response.status_code == 200
    assert _status("acme", submitted.request_id) == "approved"


def test_reject_request(world):
    submitted = onboard(world.a)

    response = _as_admin(world.a).post(f"{REQUESTS_URL}/{submitted.request_id}/reject",
                                       {"note": "unknown device"}, format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    assert _status("acme", submitted.request_id) == "rejected"


@pytest.mark.parametrize("first", ["approve", "reject"])
@pytest.mark.parametrize("second", ["approve", "reject"])
def test_second_decision_returns_409(world, first, second):
    submitted = onboard(world.a)
    client = _as_admin(world.a)
    client.post(f"{REQUESTS_URL}/{submitted.request_id}/{first}", {}, format="json")
    decided = _status("acme", submitted.request_id)

    response = client.post(f"{REQUESTS_URL}/{submitted.request_id}/{second}", {}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "not_pending"
    assert _status("acme", submitted.request_id) == decided


def test_decision_unknown_request_returns_404(world):
    response = _as_admin(world.a).post(f"{REQUESTS_URL}/{uuid.uuid4()}/approve", {}, format="json")

    assert response.status_code == 404
    assert response.json()["code"] == "onboard_request_not_found"


def test_decision_other_tenant_request_returns_404(world):
    at_globex = onboard(world.b)

    response = _as_admin(world.a).post(f"{REQUESTS_URL}/{at_globex.request_id}/approve", {}, format="json")

    assert response.status_code == 404
    assert _status("globex", at_globex.request_id) == "pending"


def test_approve_invalid_tags_returns_400(world):
    submitted = onboard(world.a)

    response = _as_admin(world.a).post(f"{REQUESTS_URL}/{submitted.request_id}/approve",
                                       {"tags": ["x" * 65]}, format="json")

    assert response.status_code == 400
    assert "tags" in response.json()["errors"]
    assert _status("acme", submitted.request_id) == "pending"


def test_edge_controllers_lists_state(world):
    submitted = onboard(world.a, facts={"firmware": "4.0"})
    approve_and_issue("acme", submitted.request_id)

    response = _as_admin(world.a).get(CONTROLLERS_URL)

    assert response.status_code == 200
    [controller] = [item for item in _results(response) if item["product_id"] == submitted.product_id]
    assert controller["state"] == "onboarded"
    assert controller["facts"] == {"firmware": "4.0"}
    assert controller["first_seen_at"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", REQUESTS_URL), ("get", CONTROLLERS_URL), ("post", "approve"), ("post", "reject")],
)
def test_other_tenant_admin_is_rejected(world, method, path):
    submitted = onboard(world.a)
    counts = row_counts("acme")
    if path in ("approve", "reject"):
        path = f"{REQUESTS_URL}/{submitted.request_id}/{path}"
    client = client_for(world.a.domain)
    client.credentials(**basic(world.b.tenant_admin_username))

    response = getattr(client, method)(path, {}, format="json") if method == "post" else client.get(path)

    assert response.status_code in (401, 403)
    assert "results" not in response.json()
    assert row_counts("acme") == counts


@pytest.mark.parametrize("path", [REQUESTS_URL, CONTROLLERS_URL])
def test_msp_user_is_rejected_at_tenant(world, path):
    client = client_for(world.a.domain)
    client.credentials(**basic(world.a.msp_user.username))

    response = client.get(path)

    assert response.status_code in (401, 403)


def test_vendor_superuser_is_rejected_at_tenant(world):
    # The vendor admin lives in the public schema, so no tenant schema contains this user.
    client = client_for(world.a.domain)
    client.credentials(**basic(world.vendor_admin.username))

    response = client.get(REQUESTS_URL)

    assert response.status_code in (401, 403)


def test_wrong_password_is_rejected(world):
    client = client_for(world.a.domain)
    client.credentials(**basic(world.a.tenant_admin_username, ADMIN_PASSWORD + "x"))

    response = client.get(REQUESTS_URL)

    assert response.status_code in (401, 403)


def test_non_staff_tenant_user_is_rejected(world):
    from django.contrib.auth import get_user_model

    with schema_context("acme"):
        get_user_model().objects.create_user("acme-viewer", password=ADMIN_PASSWORD)
    client = client_for(world.a.domain)
    client.credentials(**basic("acme-viewer"))

    response = client.get(REQUESTS_URL)

    assert response.status_code == 403


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", REQUESTS_URL), ("get", CONTROLLERS_URL), ("post", "approve"), ("post", "reject")],
)
def test_anonymous_is_rejected(world, method, path):
    submitted = onboard(world.a)
    if path in ("approve", "reject"):
        path = f"{REQUESTS_URL}/{submitted.request_id}/{path}"
    client = client_for(world.a.domain)

    response = client.post(path, {}, format="json") if method == "post" else client.get(path)

    assert response.status_code in (401, 403)
    assert _status("acme", submitted.request_id) == "pending"


def test_tenant_access_key_is_not_admin_login(world):
    # The EC's bearer key opens only the EC API, not the admin API.
    client = client_for(world.a.domain)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.a.tenant_access_key}")

    response = client.get(REQUESTS_URL)

    assert response.status_code in (401, 403)
