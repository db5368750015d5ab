"""The tenant admin's configuration API under ``/api/v1/director/``, signed in with HTTP Basic."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from tests.conftest import client_for
from tests.onboarding.helpers import basic

from .helpers import POLICIES_URL, controller, desired, make_policy, make_tag, onboard_with_tags, unique


def _as_admin(persona, host: str | None = None):
    client = client_for(host or persona.domain)
    client.credentials(**basic(persona.tenant_admin_username))
    return client


def _policy_count(schema: str) -> int:
    from policies.models import Policy, PolicyVersion

    with schema_context(schema):
        return Policy.objects.count() + PolicyVersion.objects.count()


def test_create_policy_returns_version_one(world):
    tag = make_tag("acme")

    response = _as_admin(world.a).post(POLICIES_URL, {
        "name": "Branch NTP", "kind": "auto", "body": {"ntp_servers": ["192.0.2.123"]}, "tags": [tag],
    }, format="json")

    assert response.status_code == 201, response.content
    data = response.json()
    assert data["kind"] == "auto"
    assert data["tags"] == [tag]
    assert data["latest_version"]["number"] == 1
    assert data["latest_version"]["body"] == {"ntp_servers": ["192.0.2.123"]}


def test_create_invalid_body_returns_400_with_fields(world):
    before = _policy_count("acme")

    response = _as_admin(world.a).post(POLICIES_URL, {
        "name": "Bad", "kind": "on_demand", "body": {"vlans": [{"id": 0}], "syslog": {"server": "x", "port": 0}},
    }, format="json")

    assert response.status_code == 400
    data = response.json()
    assert data["code"] == "invalid_config"
    assert set(data["errors"]) == {"body.vlans.0.id", "body.syslog.port"}
    assert _policy_count("acme") == before


def test_create_duplicate_name_returns_409(world):
    make_policy("acme", {}, name="Same name")

    response = _as_admin(world.a).post(POLICIES_URL, {"name": "same NAME", "kind": "on_demand", "body": {}},
                                       format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "policy_exists"


def test_create_with_unknown_tag_returns_400(world):
    response = _as_admin(world.a).post(POLICIES_URL, {
        "name": unique("p"), "kind": "auto", "body": {}, "tags": ["no-such-tag"],
    }, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "tag_not_found"


def test_new_version_keeps_old_version(world):
    policy = make_policy("acme", {"hostname": "one"})

    response = _as_admin(world.a).post(f"{POLICIES_URL}/{policy.pk}/versions", {"body": {"hostname": "two"}},
                                       format="json")
    versions = _as_admin(world.a).get(f"{POLICIES_URL}/{policy.pk}/versions").json()

    assert response.status_code == 201
    assert response.json()["number"] == 2
    assert [(item["number"], item["body"]) for item in versions] == [(1, {"hostname": "one"}),
                                                                     (2, {"hostname": "two"})]


def test_new_version_invalid_body_writes_nothing(world):
    policy = make_policy("acme", {"hostname": "one"})

    response = _as_admin(world.a).post(f"{POLICIES_URL}/{policy.pk}/versions", {"body": {"hostname": 7}},
                                       format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {"body.hostname": ["7 is not of type 'string'"]}
    with schema_context("acme"):
        assert policy.versions.count() == 1


def test_set_tags_on_on_demand_returns_409(world):
    policy = make_policy("acme", {})

    response = _as_admin(world.a).put(f"{POLICIES_URL}/{policy.pk}/tags", {"tags": [make_tag("acme")]},
                                      format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "tags_need_auto"


def test_push_returns_job_with_counts(world):
    product_id = onboard_with_tags(world.a)
    policy = make_policy("acme", {"hostname": "pushed"})

    response = _as_admin(world.a).post(f"{POLICIES_URL}/{policy.pk}/push", {"product_ids": [product_id]},
                                       format="json")

    assert response.status_code == 202, response.content
    job = response.json()
    assert job["state"] == "queued"
    assert job["targeted"] == 1
    assert job["policy_version"] == 1


def test_push_job_progress_after_run(world):
    from policies.jobs import run_push_job

    product_id = onboard_with_tags(world.a)
    policy = make_policy("acme", {"hostname": "pushed"})
    job_id = _as_admin(world.a).post(f"{POLICIES_URL}/{policy.pk}/push", {"product_ids": [product_id]},
                                     format="json").json()["id"]
    with schema_context("acme"):
        run_push_job(job_id)

    job = _as_admin(world.a).get(f"/api/v1/director/config-push-jobs/{job_id}").json()

    assert job["state"] == "done"
    assert (job["targeted"], job["sent"], job["acked"], job["failed"]) == (1, 0, 0, 0)
    assert desired("acme", product_id).body == {"hostname": "pushed"}


def test_push_unknown_product_id_returns_400(world):
    policy = make_policy("acme", {})

    response = _as_admin(world.a).post(f"{POLICIES_URL}/{policy.pk}/push", {"product_ids": ["EC100:nope"]},
                                       format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {"product_ids": ["EC100:nope"]}


def test_push_auto_policy_returns_409(world):
    policy = make_policy("acme", {}, kind="auto")

    response = _as_admin(world.a).post(f"{POLICIES_URL}/{policy.pk}/push", {"tags": [make_tag("acme")]},
                                       format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "not_on_demand"


def test_manual_config_shows_desired_and_applied(world):
    product_id = onboard_with_tags(world.a)
    url = f"/api/v1/director/edge-controllers/{product_id}"

    put = _as_admin(world.a).put(f"{url}/manual-config", {"body": {"hostname": "edge-7"}}, format="json")
    state = _as_admin(world.a).get(f"{url}/config").json()

    assert put.status_code == 200, put.content
    assert state["desired_version"] == 1
    assert state["desired_body"] == {"hostname": "edge-7"}
    assert state["applied_version"] == 0
    assert state["in_sync"] is False
    assert state["manual_body"] == {"hostname": "edge-7"}


def test_manual_config_invalid_body_writes_nothing(world):
    product_id = onboard_with_tags(world.a)

    response = _as_admin(world.a).put(f"/api/v1/director/edge-controllers/{product_id}/manual-config",
                                      {"body": {"ntp_servers": "ntp.example.net"}}, format="json")

    assert response.status_code == 400
    assert "body.ntp_servers" in response.json()["errors"]
    assert desired("acme", product_id) is None


def test_delete_policy_returns_204(world):
    policy = make_policy("acme", {})

    response = _as_admin(world.a).delete(f"{POLICIES_URL}/{policy.pk}")

    assert response.status_code == 204
    assert _as_admin(world.a).get(f"{POLICIES_URL}/{policy.pk}").status_code == 404


# Permissions: every endpoint, as anonymous, as another tenant's admin on this host, and on its own host.

def _endpoints(policy_id: int, product_id: str, job_id: int) -> list[tuple[str, str, dict | None]]:
    ec = f"/api/v1/director/edge-controllers/{product_id}"
    return [
        ("get", POLICIES_URL, None),
        ("post", POLICIES_URL, {"name": unique("x"), "kind": "on_demand", "body": {}}),
        ("get", f"{POLICIES_URL}/{policy_id}", None),
        ("patch", f"{POLICIES_URL}/{policy_id}", {"name": unique("renamed")}),
        ("delete", f"{POLICIES_URL}/{policy_id}", None),
        ("get", f"{POLICIES_URL}/{policy_id}/versions", None),
        ("post", f"{POLICIES_URL}/{policy_id}/versions", {"body": {}}),
        ("put", f"{POLICIES_URL}/{policy_id}/tags", {"tags": []}),
        ("post", f"{POLICIES_URL}/{policy_id}/push", {"product_ids": [product_id]}),
        ("get", f"/api/v1/director/config-push-jobs/{job_id}", None),
        ("get", f"{ec}/config", None),
        ("put", f"{ec}/manual-config", {"body": {"hostname": "intruder"}}),
        ("delete", f"{ec}/manual-config", None),
    ]


@pytest.fixture
def acme_objects(world):
    from policies.jobs import start_push_job

    from .helpers import ADMIN_ACTOR

    product_id = onboard_with_tags(world.a)
    policy = make_policy("acme", {"hostname": "acme"}, kind="auto")
    pushed = make_policy("acme", {})
    with schema_context("acme"):
        job = start_push_job(pushed, actor=ADMIN_ACTOR, product_ids=[product_id])
    return policy.pk, product_id, job.pk


def _call(client, method: str, url: str, body: dict | None):
    return getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)


def test_anonymous_gets_401_everywhere(world, acme_objects):
    for method, url, body in _endpoints(*acme_objects):
        response = _call(client_for(world.a.domain), method, url, body)
        assert response.status_code == 401, (method, url)


def test_other_tenant_admin_on_this_host_gets_401(world, acme_objects):
    for method, url, body in _endpoints(*acme_objects):
        response = _call(_as_admin(world.b, host=world.a.domain), method, url, body)
        assert response.status_code == 401, (method, url)


def test_other_tenant_admin_on_own_host_gets_404(world, acme_objects):
    policy_id, product_id, _job_id = acme_objects
    for method, url, body in _endpoints(*acme_objects):
        if url == POLICIES_URL:
            continue
        response = _call(_as_admin(world.b), method, url, body)
        assert response.status_code == 404, (method, url)
    assert desired("acme", product_id) is None
    assert controller("acme", product_id).applied_config_version == 0
    with schema_context("acme"):
        from policies.models import Policy

        assert Policy.objects.filter(pk=policy_id).exists()
