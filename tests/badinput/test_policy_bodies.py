"""Bad EC configuration bodies at the Director's policy API and pages.

A string with a control character (a NUL, which jsonb cannot store, or a
trailing newline, which Python's ``$`` lets through the schema's patterns)
gets 400 ``invalid_config`` naming its path. JSON nested too deeply to parse
gets a form error on the pages. Nothing is written.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from tests.badinput.helpers import assert_error, basic_header, snapshot
from tests.conftest import ADMIN_PASSWORD, client_for
from tests.onboarding.helpers import onboard

# (body, path of the bad value): bodies that pass the JSON Schema's types and patterns in Python alone.
CONTROL_CHARACTER_BODIES = [
    ({"vlans": [{"id": 1, "name": "lab\x00"}]}, "body.vlans.0.name"),
    ({"hostname": "edge1\n"}, "body.hostname"),
    ({"timezone": "UTC\n"}, "body.timezone"),
    ({"ntp_servers": ["ntp.example.net\n"]}, "body.ntp_servers.0"),
    ({"vlans": [{"id": 2, "name": "x", "subnet": "10.0.0.0/24\n"}]}, "body.vlans.0.subnet"),
    ({"syslog": {"server": "log.example.net\n"}}, "body.syslog.server"),
    ({"vlans": [{"id": 3, "name": "tab\tname"}]}, "body.vlans.0.name"),
]


def _admin_client(world):
    client = client_for(world.a.domain)
    client.credentials(HTTP_AUTHORIZATION=basic_header(world.a.tenant_admin_username, ADMIN_PASSWORD))
    return client


@pytest.mark.parametrize(("config", "path"), CONTROL_CHARACTER_BODIES,
                         ids=[path for _, path in CONTROL_CHARACTER_BODIES])
def test_policy_control_character_rejected(world, config, path):
    before = snapshot(world)

    response = _admin_client(world).post("/api/v1/director/policies",
                                         json.dumps({"name": "bad", "kind": "auto", "body": config}),
                                         content_type="application/json")

    body = assert_error(response, 400, "invalid_config")
    assert path in body["errors"], body
    assert snapshot(world) == before


@pytest.mark.parametrize(("config", "path"), CONTROL_CHARACTER_BODIES[:2],
                         ids=[path for _, path in CONTROL_CHARACTER_BODIES[:2]])
def test_manual_config_control_character_rejected(world, config, path):
    controller = onboard(world.a)
    before = snapshot(world)

    response = _admin_client(world).put(f"/api/v1/director/edge-controllers/{controller.product_id}/manual-config",
                                        json.dumps({"body": config}), content_type="application/json")

    body = assert_error(response, 400, "invalid_config")
    assert path in body["errors"], body
    assert snapshot(world) == before


def test_policy_page_deeply_nested_body_rejected(world):
    from django.contrib.auth import get_user_model

    client = Client(HTTP_HOST=world.a.domain)
    with schema_context(world.a.tenant.schema_name):
        client.force_login(get_user_model().objects.get(username=world.a.tenant_admin_username))
    before = snapshot(world)

    response = client.post("/policies/", {"name": "deep", "kind": "auto", "body": "[" * 5000 + "]" * 5000})

    assert response.status_code == 400
    assert "nested too deeply" in response.content.decode()
    assert snapshot(world) == before
