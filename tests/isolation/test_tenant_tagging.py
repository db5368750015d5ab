"""Cache keys and Celery tasks carry the tenant schema, and a tenant task without one fails instead of running."""

from __future__ import annotations

import pytest
from celery.signals import before_task_publish
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django_tenants.utils import schema_context

from common.tenant_tasks import TenantSchemaRequired, TenantScopedTask
from config.celery import app
from tests.factories import make_csr, new_product_id
from tests.isolation.conftest import ACTOR, CONFIG_BODY


def test_cache_key_function_is_tenant_aware():
    assert settings.CACHES["default"]["KEY_FUNCTION"] == "django_tenants.cache.make_key"


def test_cache_key_starts_with_schema(world):
    with schema_context(world.a.tenant.schema_name):
        key = cache.make_key("probe")

    assert key.startswith("acme:")


def test_cache_value_of_one_tenant_invisible_to_other(world):
    with schema_context(world.a.tenant.schema_name):
        cache.set("isolation-probe", "acme's value", timeout=30)
    try:
        with schema_context(world.b.tenant.schema_name):
            seen_by_globex = cache.get("isolation-probe")
        seen_by_public = cache.get("isolation-probe")
        with schema_context(world.a.tenant.schema_name):
            seen_by_acme = cache.get("isolation-probe")
    finally:
        with schema_context(world.a.tenant.schema_name):
            cache.delete("isolation-probe")

    assert seen_by_globex is None
    assert seen_by_public is None
    assert seen_by_acme == "acme's value"


@pytest.fixture
def published_headers():
    """Record the headers of every task message published during the test, then purge the run's queue."""
    published: list[dict] = []

    def record(sender=None, headers=None, **kwargs):
        published.append(dict(headers or {}))

    before_task_publish.connect(record, weak=False)
    try:
        yield published
    finally:
        before_task_publish.disconnect(record)
        app.control.purge()


def test_task_queued_in_tenant_carries_schema(world, published_headers):
    from policies.tasks import push_policy_task

    with schema_context(world.b.tenant.schema_name):
        push_policy_task.apply_async(args=[0])

    assert [headers["_schema_name"] for headers in published_headers] == ["globex"]


def test_queue_issuance_names_tenant_schema(world, published_headers, django_capture_on_commit_callbacks):
    from onboarding.tasks import queue_issuance

    with schema_context(world.a.tenant.schema_name), django_capture_on_commit_callbacks(execute=True):
        queue_issuance("00000000-0000-0000-0000-000000000000")

    assert [headers["_schema_name"] for headers in published_headers] == ["acme"]


def _approved_request(persona) -> str:
    """Return the id of an approved onboard request at ``persona``'s tenant whose certificate is not issued yet."""
    from onboarding.models import OnboardRequest
    from onboarding.services import approve_onboard_request, submit_onboard_request

    product_id = new_product_id()
    with schema_context(persona.tenant.schema_name):
        submitted = submit_onboard_request(product_id, make_csr(product_id)[0], {}, source_address="127.0.0.1")
        approve_onboard_request(OnboardRequest.objects.get(pk=submitted.request.pk), actor=ACTOR)
    return str(submitted.request.pk)


def _status(persona, request_id: str) -> str:
    from onboarding.models import OnboardRequest

    with schema_context(persona.tenant.schema_name):
        return OnboardRequest.objects.get(pk=request_id).status


def test_task_runs_in_schema_of_its_header(world):
    from onboarding.tasks import issue_certificates_task

    request_id = _approved_request(world.a)

    result = issue_certificates_task.apply(args=[[request_id]], headers={"_schema_name": "acme"})

    assert result.successful(), result.traceback
    assert result.result == {"issued": 1}
    assert _status(world.a, request_id) == "issued"
    assert connection.schema_name == "public"


def _tenant_tasks(world):
    from onboarding.tasks import issue_certificate_task, issue_certificates_task
    from policies.tasks import push_policy_task

    return {
        "issue_certificate_task": (issue_certificate_task, lambda: [_approved_request(world.a)]),
        "issue_certificates_task": (issue_certificates_task, lambda: [[_approved_request(world.a)]]),
        "push_policy_task": (push_policy_task, lambda: [_push_job(world.a)]),
    }


def _push_job(persona) -> int:
    from policies.models import PushJob
    from policies.services import create_policy

    with schema_context(persona.tenant.schema_name):
        policy = create_policy(name=f"tagging-{new_product_id()}", kind="on_demand", body=CONFIG_BODY, actor=ACTOR)
        return PushJob.objects.create(policy=policy, version=policy.latest_version(), targeted=0,
                                      created_by=ACTOR.name).pk


TENANT_TASKS = ["issue_certificate_task", "issue_certificates_task", "push_policy_task"]


@pytest.mark.parametrize("task_name", TENANT_TASKS)
@pytest.mark.parametrize("schema_header", ["public", None])
def test_tenant_task_without_tenant_fails(world, task_name, schema_header):
    task, make_args = _tenant_tasks(world)[task_name]
    args = make_args()

    # A None header is what a message queued without any tenant carries: the worker then stays in public.
    result = task.apply(args=args, headers={"_schema_name": schema_header})

    assert result.failed()
    assert isinstance(result.result, TenantSchemaRequired)
    assert task.name in str(result.result)


def test_issuance_without_tenant_leaves_request_approved(world):
    from onboarding.tasks import issue_certificates_task

    request_id = _approved_request(world.a)

    issue_certificates_task.apply(args=[[request_id]], headers={"_schema_name": "public"})

    assert _status(world.a, request_id) == "approved"


def test_push_without_tenant_leaves_job_queued(world):
    from policies.models import PushJob
    from policies.tasks import push_policy_task

    job_id = _push_job(world.a)

    push_policy_task.apply(args=[job_id], headers={"_schema_name": "public"})

    with schema_context(world.a.tenant.schema_name):
        assert PushJob.objects.get(pk=job_id).state == PushJob.State.QUEUED


def test_tenant_task_called_directly_in_public_fails(world):
    from onboarding.tasks import issue_certificate_task

    with pytest.raises(TenantSchemaRequired):
        issue_certificate_task("00000000-0000-0000-0000-000000000000")


@pytest.mark.parametrize("task_path", ["pki.tasks.refresh_crls_task", "pki.tasks.remind_renewals_task",
                                       "msp.tasks.run_tenant_creation_job_task"])
def test_public_tasks_are_not_tenant_scoped(task_path):
    from django.utils.module_loading import import_string

    task = import_string(task_path)

    # These visit every tenant themselves, or work on public rows only, so beat queues them without a tenant.
    assert not isinstance(task, TenantScopedTask)
