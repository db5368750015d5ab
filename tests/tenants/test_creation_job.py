"""Creating a hosted tenant in the background from the MSP portal, with progress the page polls."""

from __future__ import annotations

import pytest
from django.test import Client

import pki.services
from msp.models import TenantRegistration
from msp.services import tenant_jobs
from msp.services.tenant_jobs import run_tenant_creation_job
from tenants.models import Domain, Tenant, TenantCreationJob
from tenants.services import management_url_for, tenant_access_key_matches
from tests.conftest import ADMIN_PASSWORD
from tests.tenants.conftest import schema_exists, unique_names


def portal_client(user) -> Client:
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


@pytest.fixture
def portal_a(world) -> Client:
    return portal_client(world.a.msp_user)


@pytest.fixture
def portal_b(world) -> Client:
    return portal_client(world.b.msp_user)


def start_job(client, **fields) -> tuple[TenantCreationJob, object]:
    schema_name, domain = unique_names("job")
    body = {"hosted-name": f"Job {schema_name}", "hosted-schema_name": schema_name, "hosted-domain": domain,
            "background": "1", **fields}
    response = client.post("/portal/tenants/hosted/", body)
    return TenantCreationJob.objects.filter(schema_name=schema_name).first(), response


def test_job_created_queued_without_tenant(world, portal_a):
    job, response = start_job(portal_a)

    assert job is not None
    assert response.status_code == 302
    assert response["Location"] == f"/portal/tenants/jobs/{job.pk}/"
    assert job.state == TenantCreationJob.State.QUEUED
    assert job.owner_msp_id == world.a.msp.pk
    assert not Tenant.objects.filter(schema_name=job.schema_name).exists()
    page = portal_a.get(response["Location"])
    assert page.status_code == 200
    assert b"tenant-job.js" in page.content


def test_job_runs_and_reports_progress(world, portal_a, monkeypatch):
    job, _response = start_job(portal_a, **{"hosted-admin_username": "ops", "hosted-admin_password": ADMIN_PASSWORD})
    steps = []
    set_step = tenant_jobs._set_step

    def record_step(job_id, step):
        steps.append(step)
        set_step(job_id, step)

    monkeypatch.setattr(tenant_jobs, "_set_step", record_step)
    run_tenant_creation_job(job.pk)

    job.refresh_from_db()
    assert job.state == TenantCreationJob.State.SUCCEEDED
    assert job.step == "done"
    assert job.admin_password_encrypted == ""
    assert "creating the tenant admin" in steps
    assert "registering the tenant for ZTP lookups" in steps
    status = portal_a.get(f"/portal/tenants/jobs/{job.pk}/status/").json()
    assert status["state"] == "succeeded"
    assert status["finished"] is True
    assert TenantRegistration.objects.filter(management_url=management_url_for(job.domain)).exists()


def test_job_access_key_shown_once(world, portal_a):
    job, _response = start_job(portal_a)
    run_tenant_creation_job(job.pk)

    first = portal_a.post(f"/portal/tenants/jobs/{job.pk}/access-key/")
    second = portal_a.post(f"/portal/tenants/jobs/{job.pk}/access-key/")

    assert first.status_code == 200
    access_key = first.context["access_key"]
    assert tenant_access_key_matches(Tenant.objects.get(schema_name=job.schema_name), access_key)
    assert second.status_code == 302
    assert access_key.encode() not in portal_a.get(second["Location"]).content
    job.refresh_from_db()
    assert job.access_key_encrypted == ""
    assert job.access_key_shown is True


def test_job_runs_once_when_delivered_twice(world, portal_a):
    job, _response = start_job(portal_a)

    run_tenant_creation_job(job.pk)
    again = run_tenant_creation_job(job.pk)

    assert again is None
    assert Tenant.objects.filter(schema_name=job.schema_name).count() == 1


def test_failed_job_leaves_nothing(world, portal_a, monkeypatch):
    job, _response = start_job(portal_a)

    def failing_issuing_ca(tenant):
        raise RuntimeError("issuing CA creation failed")

    monkeypatch.setattr(pki.services, "create_issuing_ca", failing_issuing_ca)
    run_tenant_creation_job(job.pk)

    job.refresh_from_db()
    assert job.state == TenantCreationJob.State.FAILED
    assert "nothing was kept" in job.error
    assert not Tenant.objects.filter(schema_name=job.schema_name).exists()
    assert not schema_exists(job.schema_name)
    assert not Domain.objects.filter(domain=job.domain).exists()
    assert not TenantRegistration.objects.filter(management_url=job.management_url).exists()
    status = portal_a.get(f"/portal/tenants/jobs/{job.pk}/status/").json()
    assert status["state"] == "failed"


def test_job_rejected_for_taken_schema(world, portal_a):
    job, response = start_job(portal_a, **{"hosted-schema_name": world.b.tenant.schema_name})

    assert job is None
    assert response.status_code == 400


def test_job_hidden_from_other_msp(world, portal_a, portal_b):
    job, _response = start_job(portal_a)

    page = portal_b.get(f"/portal/tenants/jobs/{job.pk}/")
    status = portal_b.get(f"/portal/tenants/jobs/{job.pk}/status/")
    key = portal_b.post(f"/portal/tenants/jobs/{job.pk}/access-key/")

    assert page.status_code == 404
    assert status.status_code == 404
    assert key.status_code == 404
