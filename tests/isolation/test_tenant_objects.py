"""Tenant 2's admin guesses tenant 1's ids on tenant 2's own host: nothing of tenant 1 is shown or changed.

The matrix sends tenant 2's credentials to tenant 1's host. Here they are
used where they are valid, on tenant 2's host, with the ids of tenant 1's
onboard requests, ECs, certificates, policies, push jobs, tags and CA.
Integer ids count up in each schema separately, so tenant 2 may have a row
with the same id. The response must then show tenant 2's row, never tenant 1's.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from tests.conftest import ADMIN_PASSWORD
from tests.isolation.conftest import ACTOR, CONFIG_BODY
from tests.onboarding.helpers import basic


def _t2_api(world) -> Client:
    return Client(HTTP_HOST=world.b.domain, **basic(world.b.tenant_admin_username, ADMIN_PASSWORD))


def _t2_pages(world) -> Client:
    from django.contrib.auth import get_user_model

    client = Client(HTTP_HOST=world.b.domain)
    with schema_context(world.b.tenant.schema_name):
        client.force_login(get_user_model().objects.get(username=world.b.tenant_admin_username))
    return client


def _exists_in_t2(world, model_path: str, pk) -> bool:
    from django.apps import apps

    with schema_context(world.b.tenant.schema_name):
        return apps.get_model(model_path).objects.filter(pk=pk).exists()


def _t1_policy_name(world, objects) -> str:
    from policies.models import Policy

    with schema_context(world.a.tenant.schema_name):
        return Policy.objects.get(pk=objects.t1.policy_id).name


def _t1_tag_name(world, objects) -> str:
    from onboarding.models import Tag

    with schema_context(world.a.tenant.schema_name):
        return Tag.objects.get(pk=objects.t1.tag_id).name


def _t1_request_status(world, objects) -> str:
    from onboarding.models import OnboardRequest

    with schema_context(world.a.tenant.schema_name):
        return OnboardRequest.objects.get(pk=objects.t1.pending_request_id).status


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_api_decision_on_t1_request_is_404(world, matrix_objects, decision):
    response = _t2_api(world).post(
        f"/api/v1/director/onboard-requests/{matrix_objects.t1.pending_request_id}/{decision}", {},
        content_type="application/json")

    assert response.status_code == 404
    assert _t1_request_status(world, matrix_objects) == "pending"


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_page_decision_on_t1_request_is_404(world, matrix_objects, decision):
    response = _t2_pages(world).post(f"/requests/{matrix_objects.t1.pending_request_id}/{decision}", {})

    assert response.status_code == 404
    assert _t1_request_status(world, matrix_objects) == "pending"


@pytest.mark.parametrize("suffix", ["certificates", "config"])
def test_api_read_of_t1_ec_is_404(world, matrix_objects, suffix):
    response = _t2_api(world).get(f"/api/v1/director/edge-controllers/{matrix_objects.t1.product_id}/{suffix}")

    assert response.status_code == 404


@pytest.mark.parametrize(("method", "suffix", "body"), [
    ("post", "revoke-certificate", {"reason": "keyCompromise"}),
    ("post", "decommission", {}),
    ("put", "manual-config", {"body": {"hostname": "taken-over"}}),
    ("delete", "manual-config", None),
])
def test_api_change_of_t1_ec_is_404(world, matrix_objects, method, suffix, body):
    from onboarding.models import EdgeController
    from tests.onboarding.helpers import active_certificates

    client = _t2_api(world)
    url = f"/api/v1/director/edge-controllers/{matrix_objects.t1.product_id}/{suffix}"
    response = getattr(client, method)(url, body, content_type="application/json")

    with schema_context(world.a.tenant.schema_name):
        controller = EdgeController.objects.select_related("manual_config").get(
            product_id=matrix_objects.t1.product_id)
    assert response.status_code == 404
    assert controller.state == EdgeController.State.ONBOARDED
    assert controller.manual_config.body == CONFIG_BODY
    assert len(active_certificates(world.a.tenant.schema_name, matrix_objects.t1.product_id)) == 1


def test_lists_exclude_t1_rows(world, matrix_objects):
    client = _t2_api(world)

    requests = client.get("/api/v1/director/onboard-requests", {"page_size": 1000}).content
    controllers = client.get("/api/v1/director/edge-controllers", {"page_size": 1000}).content
    policies = client.get("/api/v1/director/policies", {"page_size": 1000}).content

    assert matrix_objects.t1.product_id.encode() not in controllers
    assert matrix_objects.t1.pending_request_id.encode() not in requests
    assert _t1_policy_name(world, matrix_objects).encode() not in policies


def test_api_policy_guess_shows_no_t1_policy(world, matrix_objects):
    response = _t2_api(world).get(f"/api/v1/director/policies/{matrix_objects.t1.policy_id}")

    if not _exists_in_t2(world, "policies.Policy", matrix_objects.t1.policy_id):
        assert response.status_code == 404
    assert _t1_policy_name(world, matrix_objects).encode() not in response.content


def test_api_policy_delete_guess_keeps_t1_policy(world, matrix_objects):
    from policies.models import Policy

    _t2_api(world).delete(f"/api/v1/director/policies/{matrix_objects.t1.policy_id}")

    with schema_context(world.a.tenant.schema_name):
        assert Policy.objects.filter(pk=matrix_objects.t1.policy_id).exists()


def test_api_push_job_guess_shows_no_t1_job(world, matrix_objects):
    response = _t2_api(world).get(f"/api/v1/director/config-push-jobs/{matrix_objects.t1.push_job_id}")

    if not _exists_in_t2(world, "policies.PushJob", matrix_objects.t1.push_job_id):
        assert response.status_code == 404
    assert _t1_policy_name(world, matrix_objects).encode() not in response.content


def test_page_controller_guess_shows_no_t1_ec(world, matrix_objects):
    response = _t2_pages(world).get(f"/controllers/{matrix_objects.t1.controller_id}/")

    if not _exists_in_t2(world, "onboarding.EdgeController", matrix_objects.t1.controller_id):
        assert response.status_code == 404
    assert matrix_objects.t1.product_id.encode() not in response.content


def test_page_policy_guess_shows_no_t1_policy(world, matrix_objects):
    response = _t2_pages(world).get(f"/policies/{matrix_objects.t1.policy_id}/")

    if not _exists_in_t2(world, "policies.Policy", matrix_objects.t1.policy_id):
        assert response.status_code == 404
    assert _t1_policy_name(world, matrix_objects).encode() not in response.content


def test_pages_hide_t1_rows(world, matrix_objects):
    client = _t2_pages(world)

    dashboard = client.get("/").content
    tags = client.get("/tags/").content
    policies = client.get("/policies/").content

    assert matrix_objects.t1.product_id.encode() not in dashboard
    assert _t1_tag_name(world, matrix_objects).encode() not in tags
    assert _t1_policy_name(world, matrix_objects).encode() not in policies


def test_controller_status_omits_t1_ec(world, matrix_objects):
    response = _t2_pages(world).get("/controllers/status", {"ids": matrix_objects.t1.controller_id})

    assert response.status_code == 200
    assert matrix_objects.t1.product_id.encode() not in response.content


def test_tag_delete_guess_keeps_t1_tag(world, matrix_objects):
    from onboarding.models import Tag

    _t2_pages(world).post(f"/tags/{matrix_objects.t1.tag_id}/delete", {})

    with schema_context(world.a.tenant.schema_name):
        assert Tag.objects.filter(pk=matrix_objects.t1.tag_id).exists()


def test_crl_of_t1_ca_is_404_at_t2(world, matrix_objects):
    response = Client(HTTP_HOST=world.b.domain).get(f"/api/v1/pki/crl/{matrix_objects.t1.ca_key_id}")

    assert response.status_code == 404


def test_ca_chain_at_t2_omits_t1_ca(world):
    from pki.models import IssuingCA

    with schema_context(world.a.tenant.schema_name):
        t1_ca_pem = IssuingCA.objects.get(is_active=True).certificate_pem.strip()

    response = Client(HTTP_HOST=world.b.domain).get("/api/v1/pki/ca")

    assert response.status_code == 200
    assert t1_ca_pem.encode() not in response.content


def test_poll_at_t2_host_rejected(world, matrix_objects):
    response = Client(HTTP_HOST=world.b.domain).get(
        f"/api/v1/onboard/{matrix_objects.t1.pending_request_id}", {"wait": "0"},
        HTTP_AUTHORIZATION=f"Bearer {matrix_objects.t1.pending_poll_token}")

    assert response.status_code in (401, 404)
    assert b"pending" not in response.content


def test_bulk_decision_on_t1_request_changes_nothing(world, matrix_objects):
    _t2_pages(world).post("/requests/decide", {"request_ids": matrix_objects.t1.pending_request_id,
                                               "decision": "approve"})

    assert _t1_request_status(world, matrix_objects) == "pending"


def test_push_to_t1_ec_rejected(world, matrix_objects):
    from policies.services import create_policy

    with schema_context(world.b.tenant.schema_name):
        policy = create_policy(name="isolation-push", kind="on_demand", body=CONFIG_BODY, actor=ACTOR)

    response = _t2_api(world).post(f"/api/v1/director/policies/{policy.pk}/push",
                                   {"product_ids": [matrix_objects.t1.product_id]}, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "edge_controller_not_found"


def test_t2_decommission_keeps_t1_mapping(world):
    from onboarding.models import EdgeController
    from onboarding.services_portal import decommission_edge_controller
    from provisioning.models import Product
    from tests.factories import provision_products
    from tests.gateway.helpers import onboard_ec

    # A product of MSP A, mapped to tenant 1, whose Product ID an EC also brought to tenant 2.
    [product_id] = provision_products(world.a.msp, world.a.registration)
    onboard_ec(world.b, product_id)

    with schema_context(world.b.tenant.schema_name):
        decommission_edge_controller(EdgeController.objects.get(product_id=product_id), actor=ACTOR)

    assert Product.objects.get(product_id=product_id).tenant_registration_id == world.a.registration.pk
