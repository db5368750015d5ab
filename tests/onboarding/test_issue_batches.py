"""Queueing certificate issuance in batches, and the batch task in ``onboarding.tasks``."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import transaction
from django_tenants.utils import schema_context

from tests.onboarding.helpers import ADMIN_ACTOR, active_certificates, approve, approve_and_issue, onboard


def _approve(request_id: str):
    from onboarding.models import OnboardRequest
    from onboarding.services import approve_onboard_request

    return approve_onboard_request(OnboardRequest.objects.get(pk=request_id), actor=ADMIN_ACTOR)


def _queued_batches(apply_async: mock.Mock) -> list[tuple[list[str], str]]:
    return [(call.kwargs["args"][0], call.kwargs["headers"]["_schema_name"]) for call in apply_async.call_args_list]


def _status(schema: str, request_id: str) -> str:
    from onboarding.models import OnboardRequest

    with schema_context(schema):
        return OnboardRequest.objects.get(pk=request_id).status


def test_bulk_approval_queues_one_batch(world, django_capture_on_commit_callbacks):
    from onboarding import tasks
    from onboarding.services_portal import approve_onboard_requests

    request_ids = [onboard(world.a).request_id for _ in range(3)]

    with mock.patch.object(tasks.issue_certificates_task, "apply_async") as apply_async:
        with django_capture_on_commit_callbacks(execute=True), schema_context("acme"):
            approve_onboard_requests(request_ids, actor=ADMIN_ACTOR)

    assert _queued_batches(apply_async) == [(request_ids, "acme")]


def test_bulk_approval_splits_at_batch_size(world, django_capture_on_commit_callbacks, monkeypatch):
    from onboarding import tasks
    from onboarding.services_portal import approve_onboard_requests

    monkeypatch.setattr(tasks, "ISSUE_BATCH_SIZE", 2)
    request_ids = [onboard(world.a).request_id for _ in range(3)]

    with mock.patch.object(tasks.issue_certificates_task, "apply_async") as apply_async:
        with django_capture_on_commit_callbacks(execute=True), schema_context("acme"):
            approve_onboard_requests(request_ids, actor=ADMIN_ACTOR)

    assert _queued_batches(apply_async) == [(request_ids[:2], "acme"), (request_ids[2:], "acme")]


def test_rolled_back_approval_leaves_batch(world, django_capture_on_commit_callbacks):
    from onboarding import tasks

    first, rolled_back, last = (onboard(world.a).request_id for _ in range(3))

    with mock.patch.object(tasks.issue_certificates_task, "apply_async") as apply_async:
        with django_capture_on_commit_callbacks(execute=True), schema_context("acme"), transaction.atomic():
            _approve(first)
            with pytest.raises(RuntimeError), transaction.atomic():
                _approve(rolled_back)
                raise RuntimeError("roll back this approval")
            _approve(last)

    assert _queued_batches(apply_async) == [([first, last], "acme")]
    assert _status("acme", rolled_back) == "pending"


def test_approvals_in_two_tenants_queue_apart(world, django_capture_on_commit_callbacks):
    from onboarding import tasks

    acme = onboard(world.a).request_id
    globex = onboard(world.b).request_id

    with mock.patch.object(tasks.issue_certificates_task, "apply_async") as apply_async:
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            with schema_context("acme"):
                _approve(acme)
            with schema_context("globex"):
                _approve(globex)

    assert _queued_batches(apply_async) == [([acme], "acme"), ([globex], "globex")]


def test_batch_task_issues_every_request(world):
    from onboarding.tasks import issue_certificates_task

    submitted = [onboard(world.a) for _ in range(2)]
    for item in submitted:
        approve("acme", item.request_id)

    with schema_context("acme"):
        result = issue_certificates_task([item.request_id for item in submitted])

    assert result == {"issued": 2}
    for item in submitted:
        assert _status("acme", item.request_id) == "issued"
        assert len(active_certificates("acme", item.product_id)) == 1


def test_batch_task_skips_issued_request(world):
    from onboarding.tasks import issue_certificates_task

    done = onboard(world.a)
    approve_and_issue("acme", done.request_id)
    waiting = onboard(world.a)
    approve("acme", waiting.request_id)

    with schema_context("acme"):
        result = issue_certificates_task([done.request_id, waiting.request_id])

    assert result == {"issued": 2}
    assert len(active_certificates("acme", done.product_id)) == 1
    assert len(active_certificates("acme", waiting.product_id)) == 1


def test_batch_task_error_spares_other_requests(world):
    from onboarding import tasks

    failing, passing = (onboard(world.a) for _ in range(2))
    for item in (failing, passing):
        approve("acme", item.request_id)
    real_complete_issuance = tasks.complete_issuance

    def fail_first(request_id):
        if request_id == failing.request_id:
            raise ValueError("issuing CA expired")
        return real_complete_issuance(request_id)

    with mock.patch.object(tasks, "complete_issuances", side_effect=ValueError("issuing CA expired")), \
            mock.patch.object(tasks, "complete_issuance", side_effect=fail_first), schema_context("acme"):
        result = tasks.issue_certificates_task([failing.request_id, passing.request_id])

    assert result == {"failed": 1, "issued": 1}
    assert _status("acme", failing.request_id) == "approved"
    assert _status("acme", passing.request_id) == "issued"


def test_batch_task_os_error_raises_for_retry(world):
    from onboarding import tasks

    submitted = onboard(world.a)
    approve("acme", submitted.request_id)

    with mock.patch.object(tasks, "complete_issuances", side_effect=ConnectionResetError("broker gone")), \
            schema_context("acme"), pytest.raises(ConnectionResetError):
        tasks.issue_certificates_task([submitted.request_id])


def test_batch_issuance_supersedes_older_certificate(world):
    from onboarding.services import complete_issuances
    from pki.models import IssuedCertificate

    first = onboard(world.a)
    approve_and_issue("acme", first.request_id)
    old_serial = active_certificates("acme", first.product_id)[0].serial_hex
    again = onboard(world.a, first.product_id)
    approve("acme", again.request_id)

    with schema_context("acme"):
        result = complete_issuances([again.request_id])
        old = IssuedCertificate.objects.get(serial_hex=old_serial)

    assert result == {"issued": 1}
    assert old.revocation_reason == "superseded"
    [active] = active_certificates("acme", first.product_id)
    assert str(active.onboard_request_id) == again.request_id


def test_batch_issuance_counts_missing_requests(world):
    import uuid

    from onboarding.services import complete_issuances

    submitted = onboard(world.a)
    approve("acme", submitted.request_id)

    with schema_context("acme"):
        result = complete_issuances([submitted.request_id, str(uuid.uuid4())])

    assert result == {"issued": 1, "not_found": 1}


def test_batch_issuance_records_one_audit_event_per_certificate(world):
    from audit.models import AuditEvent
    from onboarding.services import complete_issuances

    submitted = [onboard(world.a) for _ in range(3)]
    for item in submitted:
        approve("acme", item.request_id)

    with schema_context("acme"):
        complete_issuances([item.request_id for item in submitted])

    events = AuditEvent.objects.filter(action="certificate.issue",
                                       details__request_id__in=[item.request_id for item in submitted])
    assert events.count() == 3
    assert {event.details["product_id"] for event in events} == {item.product_id for item in submitted}


def test_batch_issuance_marks_controllers_onboarded(world):
    from onboarding.models import EdgeController
    from onboarding.services import complete_issuances

    submitted = [onboard(world.a) for _ in range(2)]
    for item in submitted:
        approve("acme", item.request_id)

    with schema_context("acme"):
        complete_issuances([item.request_id for item in submitted])
        states = set(EdgeController.objects.filter(product_id__in=[item.product_id for item in submitted])
                     .values_list("state", flat=True))

    assert states == {"onboarded"}


def test_bulk_issue_rejects_two_requests_of_one_ec(world):
    from onboarding.models import OnboardRequest
    from pki.models import IssuedCertificate
    from pki.services import issue_certificates

    first = onboard(world.a)
    second = onboard(world.a, first.product_id)

    with schema_context("acme"):
        rows = list(OnboardRequest.objects.filter(pk__in=[first.request_id, second.request_id]))
        with pytest.raises(ValueError, match="two onboard requests for one EC"):
            issue_certificates(rows, tenant=world.a.tenant)
        assert not IssuedCertificate.objects.filter(product_id=first.product_id).exists()


def test_batch_issuance_publishes_each_request_after_commit(world, django_capture_on_commit_callbacks):
    from onboarding import events
    from onboarding.services import complete_issuances

    submitted = [onboard(world.a) for _ in range(2)]
    for item in submitted:
        approve("acme", item.request_id)
    client = mock.Mock()

    with mock.patch.object(events, "_client", return_value=client), schema_context("acme"), \
            django_capture_on_commit_callbacks(execute=True):
        complete_issuances([item.request_id for item in submitted])

    published = {call.args[0] for call in client.pipeline.return_value.publish.call_args_list}
    assert published == {events.channel_for("acme", item.request_id) for item in submitted}


def test_changes_of_one_transaction_publish_in_one_pipeline(world, django_capture_on_commit_callbacks):
    from onboarding import events

    client = mock.Mock()
    with mock.patch.object(events, "_client", return_value=client), schema_context("acme"), \
            django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        events.publish_request_changed("first")
        events.publish_request_changed("second")

    assert client.pipeline.call_count == 1
    published = [call.args[0] for call in client.pipeline.return_value.publish.call_args_list]
    assert published == [events.channel_for("acme", "first"), events.channel_for("acme", "second")]


def test_change_in_rolled_back_savepoint_is_not_published(world, django_capture_on_commit_callbacks):
    from onboarding import events

    client = mock.Mock()
    with mock.patch.object(events, "_client", return_value=client), schema_context("acme"), \
            django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        events.publish_request_changed("kept")
        with pytest.raises(RuntimeError), transaction.atomic():
            events.publish_request_changed("dropped")
            raise RuntimeError("roll back the savepoint")

    published = [call.args[0] for call in client.pipeline.return_value.publish.call_args_list]
    assert published == [events.channel_for("acme", "kept")]
