"""The Director's policy pages and the configuration panel of the EC detail page."""

from __future__ import annotations

import json

from django.test import Client
from django_tenants.utils import schema_context

from tests.conftest import ADMIN_PASSWORD

from .helpers import controller, desired, make_policy, make_tag, onboard_with_tags, unique


def _signed_in(persona) -> Client:
    client = Client(HTTP_HOST=persona.domain)
    response = client.post("/accounts/login/", {"username": persona.tenant_admin_username, "password": ADMIN_PASSWORD})
    assert response.status_code == 302, response.content
    return client


def test_policy_list_requires_sign_in(world):
    response = Client(HTTP_HOST=world.a.domain).get("/policies/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_policy_list_shows_policies(world):
    policy = make_policy("acme", {"hostname": "x"})

    response = _signed_in(world.a).get("/policies/")

    assert response.status_code == 200
    assert f'data-policy="{policy.name}"' in response.content.decode()


def test_create_form_creates_auto_policy(world):
    from policies.models import Policy

    tag = make_tag("acme")
    name = unique("page-policy")

    response = _signed_in(world.a).post("/policies/", {
        "name": name, "kind": "auto", "description": "", "body": '{"timezone": "UTC"}', "tags": tag,
    })

    assert response.status_code == 302
    with schema_context("acme"):
        policy = Policy.objects.get(name=name)
        assert [item.name for item in policy.tags.all()] == [tag]
        assert policy.latest_version().body == {"timezone": "UTC"}


def test_create_form_shows_schema_errors(world):
    from policies.models import Policy

    name = unique("bad-page-policy")

    response = _signed_in(world.a).post("/policies/", {
        "name": name, "kind": "on_demand", "body": '{"vlans": [{"id": 9999}]}', "tags": "",
    })

    assert response.status_code == 400
    assert "body.vlans.0.id" in response.content.decode()
    with schema_context("acme"):
        assert not Policy.objects.filter(name=name).exists()


def test_new_version_form_adds_version(world):
    policy = make_policy("acme", {"hostname": "one"})

    response = _signed_in(world.a).post(f"/policies/{policy.pk}/versions", {"body": '{"hostname": "two"}'})

    assert response.status_code == 302
    with schema_context("acme"):
        assert policy.latest_version().number == 2


def test_push_form_queues_job(world):
    product_id = onboard_with_tags(world.a)
    policy = make_policy("acme", {"hostname": "pushed"})

    response = _signed_in(world.a).post(f"/policies/{policy.pk}/push", {"product_ids": product_id, "tags": ""})

    assert response.status_code == 302
    with schema_context("acme"):
        job = policy.push_jobs.get()
    assert job.targeted == 1


def test_other_tenant_policy_page_is_404(world):
    policy = make_policy("acme", {})

    response = _signed_in(world.b).get(f"/policies/{policy.pk}/")

    assert response.status_code == 404


def test_ec_detail_shows_desired_and_applied(world):
    product_id = onboard_with_tags(world.a)
    ec = controller("acme", product_id)
    client = _signed_in(world.a)

    client.post(f"/controllers/{ec.pk}/manual-config", {"body": json.dumps({"hostname": "edge-3"})})
    page = client.get(f"/controllers/{ec.pk}/").content.decode()

    assert desired("acme", product_id).body == {"hostname": "edge-3"}
    assert '<dd id="config-desired">1</dd>' in page
    assert 'id="config-applied">0 <span class="flag">behind</span>' in page
    assert "edge-3" in page
