"""Tenant and API token pages: create, register, rotate, revoke, each refused for another MSP's objects."""

from __future__ import annotations

import uuid

import pytest

from msp.models import MSPApiToken, TenantRegistration
from msp.services.accounts import authenticate_api_token, create_api_token
from tenants.models import Tenant
from tenants.services import management_url_for, tenant_access_key_matches
from tests.factories import VENDOR
from tests.msp_portal.conftest import field_errors, register_external

TENANTS_URL = "/portal/tenants/"
TOKENS_URL = "/portal/tokens/"


@pytest.fixture
def no_schema_creation(monkeypatch):
    """Make any attempt to save a new Tenant fail the test before a schema is created."""

    def reject_save(self, *args, **kwargs):
        raise AssertionError(f"the request reached Tenant.save for schema {self.schema_name!r}")

    monkeypatch.setattr(Tenant, "save", reject_save)


def test_tenants_page_lists_only_own_registrations(world, client_a):
    theirs = register_external(world.b.msp)

    response = client_a.get(TENANTS_URL)

    body = response.content.decode()
    assert response.status_code == 200
    assert world.a.registration.management_url in body
    assert world.b.registration.management_url not in body
    assert theirs.management_url not in body
    hosted = dict((registration.pk, is_hosted) for registration, is_hosted in response.context["rows"])
    assert hosted[world.a.registration.pk] is True


def test_register_external_tenant(world, client_a):
    suffix = uuid.uuid4().hex[:8]

    response = client_a.post("/portal/tenants/external/", {
        "external-name": f"Ext {suffix}", "external-management_url": f"HTTPS://Ext-{suffix}.Example/",
        "external-access_key": "k" * 24,
    }, follow=True)

    registration = TenantRegistration.objects.get(name=f"Ext {suffix}")
    assert registration.msp == world.a.msp
    assert registration.management_url == f"https://ext-{suffix}.example"
    assert any("Registered" in str(message) for message in response.context["messages"])
    assert "k" * 24 not in response.content.decode()


def test_register_external_reports_every_invalid_field(client_a):
    response = client_a.post("/portal/tenants/external/", {
        "external-name": "", "external-management_url": "ftp://x/y", "external-access_key": "short",
    })

    assert response.status_code == 400
    errors = field_errors(response, "external_form")
    assert set(errors) == {"name", "management_url", "access_key"}


def test_register_external_duplicate_url_reported(world, client_a):
    response = client_a.post("/portal/tenants/external/", {
        "external-name": "Another name", "external-management_url": world.b.registration.management_url,
        "external-access_key": "k" * 24,
    })

    assert response.status_code == 400
    errors = field_errors(response, "external_form")
    assert "cannot be registered" in errors["__all__"][0]


def test_create_hosted_tenant_reports_every_invalid_field(world, client_a, no_schema_creation):
    response = client_a.post("/portal/tenants/hosted/",
                             {"hosted-name": "", "hosted-schema_name": "", "hosted-domain": ""})

    assert response.status_code == 400
    assert "name" in field_errors(response, "hosted_form")


def test_create_hosted_tenant_rejects_bad_schema_name(client_a, no_schema_creation):
    response = client_a.post("/portal/tenants/hosted/", {"hosted-name": "Fine", "hosted-schema_name": "pg_bad"})

    assert "pg_bad" in field_errors(response, "hosted_form")["schema_name"][0]


def test_create_hosted_tenant_rejects_taken_domain(world, client_a, no_schema_creation):
    response = client_a.post("/portal/tenants/hosted/", {"hosted-name": "Fine", "hosted-domain": world.b.domain})

    assert "already served" in field_errors(response, "hosted_form")["domain"][0]


def test_create_hosted_tenant_rejects_own_registration_name(world, client_a, no_schema_creation):
    response = client_a.post("/portal/tenants/hosted/", {"hosted-name": world.a.registration.name,
                                                         "hosted-schema_name": f"t_{uuid.uuid4().hex[:8]}",
                                                         "hosted-domain": f"t-{uuid.uuid4().hex[:8]}.localhost"})

    assert "already have a tenant" in field_errors(response, "hosted_form")["name"][0]


def test_create_hosted_tenant_derives_names_and_shows_key(world, client_a):
    suffix = uuid.uuid4().hex[:8]
    name = f"Portal {suffix} Corp"

    response = client_a.post("/portal/tenants/hosted/", {"hosted-name": name})

    assert response.status_code == 200
    tenant = Tenant.objects.get(schema_name=f"portal_{suffix}_corp")
    assert tenant.owner_msp == world.a.msp
    access_key = response.context["access_key"]
    assert tenant_access_key_matches(tenant, access_key)
    assert access_key in response.content.decode()
    registration = TenantRegistration.objects.get(msp=world.a.msp, name=name)
    assert registration.management_url == management_url_for(f"portal-{suffix}-corp.localhost")
    assert response["Cache-Control"].count("no-store") == 1


def test_create_hosted_tenant_with_first_admin(world, client_a):
    from django.contrib.auth import get_user_model
    from django_tenants.utils import schema_context

    suffix = uuid.uuid4().hex[:8]
    response = client_a.post("/portal/tenants/hosted/", {
        "hosted-name": f"Admin {suffix}", "hosted-admin_username": "first-admin",
        "hosted-admin_password": "tenant-admin-password-2024",
    })

    assert response.status_code == 200
    tenant = Tenant.objects.get(schema_name=f"admin_{suffix}")
    with schema_context(tenant.schema_name):
        admin = get_user_model().objects.get(username="first-admin")
        assert admin.check_password("tenant-admin-password-2024")
        assert admin.is_staff


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"hosted-admin_username": "first-admin", "hosted-admin_password": "short"}, "admin_password", "too short"),
    ({"hosted-admin_username": "first-admin", "hosted-admin_password": "password"}, "admin_password",
     "too common"),
    ({"hosted-admin_username": "first-admin"}, "admin_password", "Missing tenant admin password"),
    ({"hosted-admin_password": "tenant-admin-password-2024"}, "admin_username", "Missing tenant admin user name"),
    ({"hosted-admin_username": "no spaces", "hosted-admin_password": "tenant-admin-password-2024"},
     "admin_username", "valid username"),
])
def test_create_hosted_tenant_rejects_bad_first_admin(client_a, no_schema_creation, fields, field, message):
    response = client_a.post("/portal/tenants/hosted/", {"hosted-name": "Fine", **fields})

    assert response.status_code == 400
    errors = field_errors(response, "hosted_form")
    assert message in " ".join(errors[field]), errors


def test_rotate_key_of_hosted_tenant_shows_new_key(world, client_a):
    response = client_a.post(f"/portal/tenants/{world.a.registration.pk}/rotate/")

    assert response.status_code == 200
    tenant = Tenant.objects.get(pk=world.a.tenant.pk)
    assert tenant_access_key_matches(tenant, response.context["access_key"])
    assert response.context["access_key"] in response.content.decode()


def test_rotate_key_of_external_tenant_reports_error(world, client_a):
    registration = register_external(world.a.msp)

    response = client_a.post(f"/portal/tenants/{registration.pk}/rotate/", follow=True)

    assert any("not hosted by this deployment" in str(message) for message in response.context["messages"])


def test_rotate_key_of_other_msp_is_404(world, client_a):
    before = Tenant.objects.get(pk=world.b.tenant.pk).access_key_id

    response = client_a.post(f"/portal/tenants/{world.b.registration.pk}/rotate/")

    assert response.status_code == 404
    assert client_a.post("/portal/tenants/999999999/rotate/").status_code == 404
    assert Tenant.objects.get(pk=world.b.tenant.pk).access_key_id == before


def test_rotate_key_requires_post(world, client_a):
    assert client_a.get(f"/portal/tenants/{world.a.registration.pk}/rotate/").status_code == 405


# API tokens.


def test_tokens_page_lists_only_own_tokens(world, client_a):
    own, _ = create_api_token(world.a.msp, f"own-{uuid.uuid4().hex[:6]}", actor=VENDOR)
    theirs, _ = create_api_token(world.b.msp, f"theirs-{uuid.uuid4().hex[:6]}", actor=VENDOR)

    body = client_a.get(TOKENS_URL).content.decode()

    assert own.key_id in body
    assert theirs.key_id not in body


def test_create_token_shows_it_once(world, client_a):
    name = f"ci-{uuid.uuid4().hex[:6]}"

    response = client_a.post(TOKENS_URL, {"name": name})

    plaintext = response.context["plaintext"]
    assert plaintext in response.content.decode()
    token = authenticate_api_token(plaintext)
    assert token.msp == world.a.msp
    assert token.created_by == world.a.msp_user
    assert plaintext not in client_a.get(TOKENS_URL).content.decode()


def test_create_token_without_name_reports_field(client_a):
    response = client_a.post(TOKENS_URL, {"name": "   "})

    assert response.status_code == 400
    assert "name" in field_errors(response)


def test_revoke_token(world, client_a):
    token, _plaintext = create_api_token(world.a.msp, "to-revoke", actor=VENDOR)

    response = client_a.post(f"/portal/tokens/{token.pk}/revoke/", follow=True)

    token.refresh_from_db()
    assert token.revoked_at is not None
    assert any("Revoked" in str(message) for message in response.context["messages"])


def test_revoke_token_of_other_msp_is_404(world, client_a):
    theirs, _ = create_api_token(world.b.msp, "theirs", actor=VENDOR)

    response = client_a.post(f"/portal/tokens/{theirs.pk}/revoke/")

    assert response.status_code == 404
    assert MSPApiToken.objects.get(pk=theirs.pk).revoked_at is None
