"""Secrets are shown once, in the response that creates them, and on no list, detail, export or page.

Every read endpoint of the MSP, vendor and Director APIs, every changelist,
change page and history page of the Django admin, and the MSP portal and Director pages
are fetched after the whole flow and searched for every secret it made.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django_tenants.utils import schema_context

from tests.conftest import PROJECT_DIR
from tests.secrets.scanning import find_secrets

pytestmark = pytest.mark.e2e

# Newest rows of each admin model whose change page is fetched.
CHANGE_PAGES_PER_MODEL = 3


def _assert_pages_hold_no_secret(client, paths: list[str], needles, *, allowed_status=(200,)) -> None:
    findings = []
    for path in paths:
        response = client.get(path)
        assert response.status in allowed_status, f"GET {client.host}{path}: HTTP {response.status}"
        findings += find_secrets(response.text, needles, where=f"GET {client.host}{path}")
    assert not findings, "secrets found:\n" + "\n".join(findings)


def _admin_paths() -> list[str]:
    paths = []
    for model, _model_admin in admin.site._registry.items():
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        paths.append(reverse(f"{prefix}_changelist", urlconf="config.urls_public"))
        for pk in model.objects.order_by("-pk").values_list("pk", flat=True)[:CHANGE_PAGES_PER_MODEL]:
            for page in ("change", "history"):
                try:
                    paths.append(reverse(f"{prefix}_{page}", args=[pk], urlconf="config.urls_public"))
                except NoReverseMatch:
                    continue
    return paths


def test_admin_pages_show_no_secret(secret_flow, committed):
    paths = _admin_paths()

    assert len(paths) > len(admin.site._registry)
    _assert_pages_hold_no_secret(secret_flow.admin_session, paths, secret_flow.registry.needles)


def test_msp_api_reads_return_no_secret(secret_flow):
    product = secret_flow.product_id
    paths = ["/api/v1/msp/products", "/api/v1/msp/tenant-registrations",
             f"/api/v1/msp/tenant-registrations/{secret_flow.registration_id}",
             f"/api/v1/msp/products/{product}/route", f"/api/v1/msp/products/{product}/lookups"]

    msp_api = secret_flow.stack.client().with_bearer(secret_flow.msp_token)
    _assert_pages_hold_no_secret(msp_api, paths, secret_flow.registry.needles)


def test_vendor_api_reads_return_no_secret(secret_flow):
    product = secret_flow.product_id
    paths = ["/api/v1/vendor/msps", f"/api/v1/vendor/products/{product}/route",
             f"/api/v1/vendor/products/{product}/lookups"]

    _assert_pages_hold_no_secret(secret_flow.vendor_basic, paths, secret_flow.registry.needles)


def test_director_api_reads_return_no_secret(secret_flow):
    product = secret_flow.product_id
    paths = ["/api/v1/director/onboard-requests", "/api/v1/director/onboard-requests?status=pending",
             "/api/v1/director/edge-controllers", f"/api/v1/director/edge-controllers/{product}/certificates",
             f"/api/v1/director/edge-controllers/{product}/config", "/api/v1/director/policies",
             "/api/v1/pki/ca"]

    _assert_pages_hold_no_secret(secret_flow.tenant_admin_basic, paths, secret_flow.registry.needles)


def test_portal_pages_show_no_secret(secret_flow):
    paths = ["/portal/", "/portal/tenants/", "/portal/products/", f"/portal/products/{secret_flow.product_id}/",
             "/portal/tokens/", "/portal/claim/", f"/portal/tenants/jobs/{secret_flow.tenant_job_id}/",
             f"/portal/tenants/jobs/{secret_flow.tenant_job_id}/status/"]

    _assert_pages_hold_no_secret(secret_flow.portal_session, paths, secret_flow.registry.needles)


def test_tenant_job_access_key_is_shown_once(secret_flow):
    job = f"/portal/tenants/jobs/{secret_flow.tenant_job_id}"

    again = secret_flow.portal_session.post_form(f"{job}/access-key/", {}, form_page=f"{job}/")

    assert again.status == 200
    assert "shown already" in again.text
    assert not find_secrets(again.text, secret_flow.registry.needles, where="second reveal")


def test_director_pages_show_no_secret(secret_flow, committed):
    from onboarding.models import EdgeController

    with schema_context(secret_flow.schema_name):
        controller = EdgeController.objects.get(product_id=secret_flow.product_id)
    paths = ["/", "/tags/", "/policies/", f"/controllers/{controller.pk}/"]

    _assert_pages_hold_no_secret(secret_flow.director_session, paths, secret_flow.registry.needles)


def test_operations_endpoints_show_no_secret(secret_flow):
    scraper = secret_flow.stack.client().with_bearer(secret_flow.stack.metrics_token)

    _assert_pages_hold_no_secret(scraper, ["/healthz", "/readyz", "/metrics"], secret_flow.registry.needles)


def test_product_export_holds_no_secret(secret_flow):
    completed = subprocess.run([sys.executable, "manage.py", "export_products", "--msp", secret_flow.msp_slug],
                               cwd=PROJECT_DIR, env=secret_flow.stack.env, capture_output=True, text=True,
                               timeout=60, check=False)

    assert completed.returncode == 0, completed.stderr[-2000:]
    assert secret_flow.product_id in completed.stdout
    findings = find_secrets(completed.stdout + completed.stderr, secret_flow.registry.needles,
                            where="export_products output")
    assert not findings, "secrets found:\n" + "\n".join(findings)
