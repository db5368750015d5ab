"""How policies and manual configuration combine into an EC's desired configuration."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from .helpers import ADMIN_ACTOR, desired, make_policy, make_tag, onboard_with_tags


def _push(schema: str, policy, product_ids) -> None:
    from policies.jobs import run_push_job, start_push_job

    with schema_context(schema):
        job = start_push_job(policy, actor=ADMIN_ACTOR, product_ids=product_ids)
        run_push_job(job.pk)


def _set_manual(schema: str, product_id: str, body: dict) -> None:
    from onboarding.models import EdgeController
    from policies.services import set_manual_config

    with schema_context(schema):
        set_manual_config(EdgeController.objects.get(product_id=product_id), body, actor=ADMIN_ACTOR)


def test_auto_policy_applies_at_onboarding(world):
    tag = make_tag("acme")
    policy = make_policy("acme", {"ntp_servers": ["ntp1.example.net"]}, kind="auto", tags=[tag])

    product_id = onboard_with_tags(world.a, [tag])

    row = desired("acme", product_id)
    assert row.version == 1
    assert row.body == {"ntp_servers": ["ntp1.example.net"]}
    assert row.sources == [{"layer": "auto", "policy": policy.name, "policy_id": policy.pk, "policy_version": 1}]


def test_auto_policy_skips_ec_without_tag(world):
    make_policy("acme", {"hostname": "edge"}, kind="auto", tags=[make_tag("acme")])

    product_id = onboard_with_tags(world.a, [make_tag("acme")])

    assert desired("acme", product_id) is None


def test_auto_policy_tag_attached_later_applies(world):
    from policies.services import set_policy_tags

    tag = make_tag("acme")
    product_id = onboard_with_tags(world.a, [tag])
    policy = make_policy("acme", {"timezone": "Europe/Paris"}, kind="auto")

    with schema_context("acme"):
        set_policy_tags(policy, [tag.upper()], actor=ADMIN_ACTOR)

    assert desired("acme", product_id).body == {"timezone": "Europe/Paris"}


def test_auto_policy_new_version_bumps_ec_version(world):
    from policies.services import add_policy_version

    tag = make_tag("acme")
    policy = make_policy("acme", {"hostname": "one"}, kind="auto", tags=[tag])
    product_id = onboard_with_tags(world.a, [tag])

    with schema_context("acme"):
        add_policy_version(policy, {"hostname": "two"}, actor=ADMIN_ACTOR)

    row = desired("acme", product_id)
    assert row.version == 2
    assert row.body == {"hostname": "two"}
    assert row.sources[0]["policy_version"] == 2


def test_on_demand_policy_applies_when_pushed(world):
    product_id = onboard_with_tags(world.a)
    policy = make_policy("acme", {"dns_servers": ["192.0.2.53"]})
    assert desired("acme", product_id) is None

    _push("acme", policy, [product_id])

    row = desired("acme", product_id)
    assert row.body == {"dns_servers": ["192.0.2.53"]}
    assert row.sources[0]["layer"] == "on_demand"


def test_on_demand_overrides_auto_key(world):
    tag = make_tag("acme")
    make_policy("acme", {"hostname": "auto-name", "timezone": "UTC"}, kind="auto", tags=[tag])
    product_id = onboard_with_tags(world.a, [tag])
    on_demand = make_policy("acme", {"hostname": "pushed-name"})

    _push("acme", on_demand, [product_id])

    assert desired("acme", product_id).body == {"hostname": "pushed-name", "timezone": "UTC"}


def test_manual_overrides_on_demand_and_auto(world):
    tag = make_tag("acme")
    make_policy("acme", {"hostname": "auto-name", "timezone": "UTC"}, kind="auto", tags=[tag])
    product_id = onboard_with_tags(world.a, [tag])
    _push("acme", make_policy("acme", {"hostname": "pushed-name", "dns_servers": ["192.0.2.1"]}), [product_id])

    _set_manual("acme", product_id, {"hostname": "manual-name"})

    row = desired("acme", product_id)
    assert row.body == {"hostname": "manual-name", "timezone": "UTC", "dns_servers": ["192.0.2.1"]}
    assert [source["layer"] for source in row.sources] == ["auto", "on_demand", "manual"]
    assert row.version == 3


def test_manual_cleared_restores_policy_value(world):
    from onboarding.models import EdgeController
    from policies.services import clear_manual_config

    tag = make_tag("acme")
    make_policy("acme", {"hostname": "auto-name"}, kind="auto", tags=[tag])
    product_id = onboard_with_tags(world.a, [tag])
    _set_manual("acme", product_id, {"hostname": "manual-name"})

    with schema_context("acme"):
        clear_manual_config(EdgeController.objects.get(product_id=product_id), actor=ADMIN_ACTOR)

    row = desired("acme", product_id)
    assert row.body == {"hostname": "auto-name"}
    assert row.version == 3


def test_unchanged_document_keeps_version(world):
    product_id = onboard_with_tags(world.a)
    _set_manual("acme", product_id, {"hostname": "same"})

    _set_manual("acme", product_id, {"hostname": "same"})

    assert desired("acme", product_id).version == 1


def test_deleted_policy_leaves_empty_document(world):
    from policies.services import delete_policy

    tag = make_tag("acme")
    policy = make_policy("acme", {"hostname": "gone"}, kind="auto", tags=[tag])
    product_id = onboard_with_tags(world.a, [tag])

    with schema_context("acme"):
        delete_policy(policy, actor=ADMIN_ACTOR)

    row = desired("acme", product_id)
    assert row.body == {}
    assert row.version == 2


def test_pending_ec_gets_no_document(world):
    from onboarding.models import EdgeController
    from tests.onboarding.helpers import onboard

    submitted = onboard(world.a)
    with schema_context("acme"):
        from policies.services import refresh_desired_configs

        refresh_desired_configs([EdgeController.objects.get(product_id=submitted.product_id).pk])

    assert desired("acme", submitted.product_id) is None


@pytest.mark.parametrize("body, path", [
    ({"hostname": "-bad-"}, "body.hostname"),
    ({"vlans": [{"id": 5000}]}, "body.vlans.0.id"),
    ({"syslog": {"port": 514}}, "body.syslog"),
    ({"colour": "blue"}, "body"),
    (["not", "an", "object"], "body"),
])
def test_invalid_body_raises_with_path(world, body, path):
    from policies.models import Policy
    from policies.services import PolicyError, create_policy

    with schema_context("acme"), pytest.raises(PolicyError) as raised:
        create_policy(name="bad", kind="on_demand", body=body, actor=ADMIN_ACTOR)

    assert raised.value.code == "invalid_config"
    assert path in raised.value.errors
    with schema_context("acme"):
        assert not Policy.objects.filter(name="bad").exists()


def test_stored_version_cannot_change(world):
    policy = make_policy("acme", {"hostname": "fixed"})

    with schema_context("acme"):
        version = policy.latest_version()
        version.body = {"hostname": "changed"}
        with pytest.raises(ValueError, match="cannot change"):
            version.save()


def test_deleting_tag_drops_its_auto_policy(world):
    from onboarding.models import Tag
    from onboarding.services_portal import delete_tag

    tag = make_tag("acme")
    make_policy("acme", {"hostname": "edge-1"}, kind="auto", tags=[tag])
    product_id = onboard_with_tags(world.a, [tag])
    assert desired("acme", product_id).body == {"hostname": "edge-1"}

    with schema_context("acme"):
        delete_tag(Tag.objects.get(name__iexact=tag), actor=ADMIN_ACTOR)

    row = desired("acme", product_id)
    assert row.body == {}
    assert row.version == 2
