"""Deleting hosted tenants: the schema policy, the Provision Server side, and who may delete."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import override_settings

from msp.models import TenantRegistration
from msp.services.hosted_tenants import create_and_register_hosted_tenant
from provisioning.models import Product
from tenants.deletion import delete_hosted_tenant
from tenants.models import Domain, Tenant
from tests.factories import VENDOR, provision_products
from tests.msp.conftest import audit_events
from tests.provisioning.helpers import post_lookup
from tests.tenants.conftest import schema_exists, schemas_like, unique_names

HOSTED_TENANTS_URL = "/api/v1/msp/hosted-tenants"


@pytest.fixture
def hosted(world):
    """A tenant of MSP A, registered, with two products mapped to it."""
    schema_name, domain = unique_names("del")
    created = create_and_register_hosted_tenant(world.a.msp, name=f"Doomed {schema_name}",
                                                schema_name=schema_name, domain=domain, actor=VENDOR)
    created.product_ids = provision_products(world.a.msp, created.registration, count=2)
    return created


def test_deleted_tenant_lookup_returns_409_not_mapped(world, public_client, hosted):
    before = post_lookup(public_client, {"product_id": hosted.product_ids[0]}, key=world.provisioning_key)
    assert before.status_code == 200, before.content

    delete_hosted_tenant(hosted.tenant, actor=VENDOR)

    for product_id in hosted.product_ids:
        response = post_lookup(public_client, {"product_id": product_id}, key=world.provisioning_key)
        assert response.status_code == 409, response.content
        assert response.json()["code"] == "not_mapped"
    assert not TenantRegistration.objects.filter(pk=hosted.registration.pk).exists()
    assert not Product.objects.filter(product_id__in=hosted.product_ids, mapped_at__isnull=False).exists()
    assert audit_events("tenant.delete", hosted.tenant.schema_name).count() == 1


def test_delete_drop_policy_drops_schema(world, hosted):
    schema_name = hosted.tenant.schema_name

    deleted = delete_hosted_tenant(hosted.tenant, actor=VENDOR, policy="drop")

    assert deleted.archived_schema is None
    assert not schema_exists(schema_name)
    assert schemas_like(rf"archived\_{schema_name}\_%") == []
    assert not Tenant.objects.filter(schema_name=schema_name).exists()
    assert not Domain.objects.filter(tenant_id=hosted.tenant.pk).exists()


def test_delete_archive_policy_renames_schema(world, hosted):
    schema_name = hosted.tenant.schema_name

    with override_settings(ZTSP_TENANT_DELETE_POLICY="archive"):
        deleted = delete_hosted_tenant(hosted.tenant, actor=VENDOR)

    assert deleted.policy == "archive"
    assert deleted.archived_schema.startswith(f"archived_{schema_name}_")
    assert schemas_like(rf"archived\_{schema_name}\_%") == [deleted.archived_schema]
    assert not schema_exists(schema_name)
    assert not Tenant.objects.filter(schema_name=schema_name).exists()
    assert not Domain.objects.filter(tenant_id=hosted.tenant.pk).exists()


def test_delete_archive_name_fits_postgresql_limit(world):
    from tenants.deletion import archived_schema_name

    assert len(archived_schema_name("x" * 63)) == 63


def test_msp_api_deletes_own_tenant(world, client_a, hosted):
    schema_name = hosted.tenant.schema_name

    response = client_a.delete(f"{HOSTED_TENANTS_URL}/{schema_name}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["schema_name"] == schema_name
    assert body["tenant_registrations_deleted"] == 1
    assert body["products_unmapped"] == 2
    assert not Tenant.objects.filter(schema_name=schema_name).exists()


def test_msp_api_rejects_other_msps_tenant(world, client_b, hosted):
    schema_name = hosted.tenant.schema_name

    response = client_b.delete(f"{HOSTED_TENANTS_URL}/{schema_name}")
    unknown = client_b.delete(f"{HOSTED_TENANTS_URL}/no_such_tenant")

    # Another MSP's tenant reads exactly like a missing one.
    assert response.status_code == 404
    assert response.json()["code"] == "hosted_tenant_not_found"
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "hosted_tenant_not_found"
    assert Tenant.objects.filter(schema_name=schema_name).exists()
    assert schema_exists(schema_name)
    assert TenantRegistration.objects.filter(pk=hosted.registration.pk).exists()


def test_msp_api_rejects_other_msps_world_tenant(world, client_b):
    response = client_b.delete(f"{HOSTED_TENANTS_URL}/{world.a.tenant.schema_name}")

    assert response.status_code == 404
    assert Tenant.objects.filter(schema_name=world.a.tenant.schema_name).exists()


def test_delete_command_dry_run_changes_nothing(world, hosted, capsys):
    schema_name = hosted.tenant.schema_name

    call_command("delete_hosted_tenant", schema_name, "--dry-run")

    assert "nothing changed" in capsys.readouterr().out
    assert Tenant.objects.filter(schema_name=schema_name).exists()
    assert TenantRegistration.objects.filter(pk=hosted.registration.pk).exists()


def test_delete_command_drops_tenant(world, hosted, capsys):
    schema_name = hosted.tenant.schema_name

    call_command("delete_hosted_tenant", schema_name, "--policy", "drop")

    assert "schema dropped" in capsys.readouterr().out
    assert not Tenant.objects.filter(schema_name=schema_name).exists()
    assert not schema_exists(schema_name)


def test_delete_rejects_public_tenant(world):
    with pytest.raises(ValueError, match="public tenant"):
        delete_hosted_tenant(Tenant.objects.get(schema_name="public"), actor=VENDOR)
