"""Approval, rejection and certificate issuance in ``onboarding.services``."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from tests.onboarding.helpers import (
    active_certificates,
    approve,
    approve_and_issue,
    issue,
    onboard,
    reject,
    row_counts,
)


def _request(schema: str, request_id: str):
    from onboarding.models import OnboardRequest

    with schema_context(schema):
        return OnboardRequest.objects.select_related("edge_controller").get(pk=request_id)


def _controller_tags(schema: str, product_id: str) -> set[str]:
    from onboarding.models import EdgeController

    with schema_context(schema):
        return set(EdgeController.objects.get(product_id=product_id).tags.values_list("name", flat=True))


def _audit_events(request_id: str, action: str) -> list:
    from audit.models import AuditEvent

    return list(AuditEvent.objects.filter(action=action, object_id=request_id))


def test_approve_adds_tags_to_controller(world):
    submitted = onboard(world.a)

    approve("acme", submitted.request_id, tags=["site-berlin", " rack-4 ", "", "site-berlin"])

    assert _controller_tags("acme", submitted.product_id) == {"site-berlin", "rack-4"}
    assert _request("acme", submitted.request_id).status == "approved"


def test_approve_reuses_existing_tag_rows(world):
    from onboarding.models import Tag

    first = onboard(world.a)
    second = onboard(world.a)
    approve("acme", first.request_id, tags=["shared"])
    counts = row_counts("acme")

    approve("acme", second.request_id, tags=["shared"])

    assert row_counts("acme")["tags"] == counts["tags"]
    with schema_context("acme"):
        assert Tag.objects.get(name="shared").edge_controllers.count() == 2


def test_approve_tags_stay_in_tenant(world):
    from onboarding.models import Tag

    submitted = onboard(world.a)

    approve("acme", submitted.request_id, tags=["only-acme"])

    with schema_context("globex"):
        assert not Tag.objects.filter(name="only-acme").exists()


def test_approve_too_long_tag_raises(world):
    from onboarding.services import InvalidTransition

    submitted = onboard(world.a)

    with pytest.raises(InvalidTransition) as raised:
        approve("acme", submitted.request_id, tags=["x" * 65])

    assert raised.value.code == "invalid_tag"
    assert _request("acme", submitted.request_id).status == "pending"


@pytest.mark.parametrize("decide_first", [approve, reject], ids=["approved", "rejected"])
@pytest.mark.parametrize("decide_again", [approve, reject], ids=["approve", "reject"])
def test_decision_on_decided_request_raises(world, decide_first, decide_again):
    from onboarding.services import InvalidTransition

    submitted = onboard(world.a)
    decide_first("acme", submitted.request_id)
    status = _request("acme", submitted.request_id).status

    with pytest.raises(InvalidTransition) as raised:
        decide_again("acme", submitted.request_id)

    assert raised.value.code == "not_pending"
    assert _request("acme", submitted.request_id).status == status


def test_approve_issued_request_raises(world):
    from onboarding.services import InvalidTransition

    submitted = onboard(world.a)
    approve_and_issue("acme", submitted.request_id)

    with pytest.raises(InvalidTransition) as raised:
        approve("acme", submitted.request_id)

    assert raised.value.code == "not_pending"


def test_approve_conflicting_request_supersedes_pending(world):
    first = onboard(world.a)
    second = onboard(world.a, first.product_id)

    approve("acme", second.request_id)

    superseded = _request("acme", first.request_id)
    assert superseded.status == "superseded"
    assert superseded.decided_at is not None
    assert superseded.decided_by
    assert _request("acme", second.request_id).status == "approved"


def test_approve_leaves_other_ec_pending(world):
    first = onboard(world.a)
    other = onboard(world.a)

    approve("acme", first.request_id)

    assert _request("acme", other.request_id).status == "pending"


def test_reject_marks_new_ec_rejected(world):
    submitted = onboard(world.a)

    reject("acme", submitted.request_id)

    row = _request("acme", submitted.request_id)
    assert row.status == "rejected"
    assert row.edge_controller.state == "rejected"


def test_reject_conflict_keeps_onboarded_ec(world):
    first = onboard(world.a)
    approve_and_issue("acme", first.request_id)
    impostor = onboard(world.a, first.product_id)

    reject("acme", impostor.request_id)

    assert _request("acme", impostor.request_id).edge_controller.state == "onboarded"
    assert len(active_certificates("acme", first.product_id)) == 1


def test_issue_marks_request_and_controller(world):
    submitted = onboard(world.a)

    result = approve_and_issue("acme", submitted.request_id)

    assert result.status == "issued"
    row = _request("acme", submitted.request_id)
    assert row.status == "issued"
    assert row.edge_controller.state == "onboarded"
    [certificate] = active_certificates("acme", submitted.product_id)
    assert certificate.onboard_request_id == row.pk
    assert certificate.edge_controller_id == row.edge_controller_id


def test_reonboard_revokes_previous_certificate(world):
    from pki.models import IssuedCertificate

    first = onboard(world.a)
    approve_and_issue("acme", first.request_id)
    second = onboard(world.a, first.product_id)

    approve_and_issue("acme", second.request_id)

    with schema_context("acme"):
        old = IssuedCertificate.objects.get(onboard_request_id=first.request_id)
        new = IssuedCertificate.objects.get(onboard_request_id=second.request_id)
    assert old.revoked_at is not None
    assert old.revocation_reason == "superseded"
    assert new.revoked_at is None
    assert [certificate.pk for certificate in active_certificates("acme", first.product_id)] == [new.pk]


def test_complete_issuance_twice_issues_once(world):
    submitted = onboard(world.a)
    approve_and_issue("acme", submitted.request_id)
    counts = row_counts("acme")

    again = issue("acme", submitted.request_id)

    assert again.status == "issued"
    assert row_counts("acme") == counts
    assert len(active_certificates("acme", submitted.product_id)) == 1


def test_complete_issuance_skips_pending_request(world):
    submitted = onboard(world.a)
    counts = row_counts("acme")

    result = issue("acme", submitted.request_id)

    assert result.status == "pending"
    assert row_counts("acme") == counts


def test_complete_issuance_skips_rejected_request(world):
    submitted = onboard(world.a)
    reject("acme", submitted.request_id)

    result = issue("acme", submitted.request_id)

    assert result.status == "rejected"
    assert active_certificates("acme", submitted.product_id) == []


def test_complete_issuance_unknown_request_returns_none(world):
    import uuid

    assert issue("acme", str(uuid.uuid4())) is None


def test_complete_issuance_in_other_tenant_issues_nothing(world):
    submitted = onboard(world.a)
    approve("acme", submitted.request_id)

    # The Celery task runs in the schema named in its headers, and globex has no such request.
    assert issue("globex", submitted.request_id) is None
    assert _request("acme", submitted.request_id).status == "approved"


def test_audit_events_carry_tenant_schema(world):
    first = onboard(world.a)
    approve_and_issue("acme", first.request_id, tags=["audited"])
    second = onboard(world.a)
    reject("acme", second.request_id)

    [created] = _audit_events(first.request_id, "onboard_request.create")
    [approved] = _audit_events(first.request_id, "onboard_request.approve")
    [rejected] = _audit_events(second.request_id, "onboard_request.reject")
    [certificate] = active_certificates("acme", first.product_id)
    [issued] = _audit_events(certificate.serial_hex, "certificate.issue")
    for event in (created, approved, rejected, issued):
        assert event.tenant_schema == "acme", event.action
    assert created.actor_type == "device"
    assert created.actor == first.product_id
    assert approved.details["tags"] == ["audited"]
    assert issued.details["request_id"] == first.request_id


def test_audit_event_of_other_tenant_names_its_schema(world):
    submitted = onboard(world.b)

    [created] = _audit_events(submitted.request_id, "onboard_request.create")

    assert created.tenant_schema == "globex"


def test_later_approval_wins_whatever_issue_order(world):
    first = onboard(world.a)
    approve("acme", first.request_id)
    second = onboard(world.a, first.product_id)
    approve("acme", second.request_id)

    # Celery may run the two issuance tasks in either order, for example after a retry.
    issue("acme", second.request_id)
    issue("acme", first.request_id)

    [certificate] = active_certificates("acme", first.product_id)
    assert str(certificate.onboard_request_id) == second.request_id


def test_conflicting_request_keeps_onboarded_ec_facts(world):
    from onboarding.models import EdgeController

    first = onboard(world.a, facts={"firmware": "1.0"})
    approve_and_issue("acme", first.request_id)

    onboard(world.a, first.product_id, facts={"firmware": "9.9-unapproved"})

    with schema_context("acme"):
        controller = EdgeController.objects.get(product_id=first.product_id)
    assert controller.facts == {"firmware": "1.0"}
