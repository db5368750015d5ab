"""MSP B names MSP A's products, registrations, tenants and jobs in request bodies and filters: nothing of A's changes.

The matrix covers ids in URLs. These tests cover ids that travel in bodies,
forms and query strings, and check that the rows stay as they were.
"""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from msp.services.products import NOT_YOURS
from tests.factories import VENDOR, provision_products


def _api(token: str) -> APIClient:
    client = APIClient(HTTP_HOST="localhost")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _portal(user) -> Client:
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def _product(product_id: str):
    from provisioning.models import Product

    return Product.objects.get(product_id=product_id)


@pytest.fixture
def a_mapped(world) -> str:
    """A product of MSP A, claimed and mapped to A's tenant registration."""
    [product_id] = provision_products(world.a.msp, world.a.registration)
    return product_id


@pytest.fixture
def a_allocated(world) -> str:
    """A product allocated to MSP A, not claimed yet."""
    import io

    from msp.services.products import allocate_products, numbered
    from provisioning.services.importing import import_products
    from tests.factories import new_product_id

    product_id = new_product_id()
    import_products(io.BytesIO(product_id.encode()), actor=VENDOR)
    allocate_products(world.a.msp, numbered([product_id]), actor=VENDOR)
    return product_id


def test_claim_of_other_msps_product_rejected(world, a_allocated):
    response = _api(world.b.msp_token).post("/api/v1/msp/products/claim", {"product_ids": [a_allocated]},
                                            format="json")

    assert response.status_code == 200
    assert [item["reason"] for item in response.json()["rejected"]] == [NOT_YOURS]
    assert _product(a_allocated).claimed_at is None


def test_claim_rejects_other_msps_product_like_unknown(world, a_allocated):
    from tests.factories import new_product_id

    response = _api(world.b.msp_token).post("/api/v1/msp/products/claim",
                                            {"product_ids": [a_allocated, new_product_id()]}, format="json")

    [theirs, unknown] = response.json()["rejected"]
    assert theirs["reason"] == unknown["reason"]


def test_unmap_of_other_msps_product_changes_nothing(world, a_mapped):
    response = _api(world.b.msp_token).post("/api/v1/msp/products/unmap", {"product_ids": [a_mapped]},
                                            format="json")

    assert response.status_code == 200
    assert [item["reason"] for item in response.json()["rejected"]] == [NOT_YOURS]
    assert _product(a_mapped).tenant_registration_id == world.a.registration.pk


def test_map_other_msps_product_to_own_tenant_rejected(world, a_mapped):
    response = _api(world.b.msp_token).post(
        "/api/v1/msp/products/map", {"tenant_registration": world.b.registration.pk, "product_ids": [a_mapped]},
        format="json")

    assert response.status_code == 200
    assert [item["reason"] for item in response.json()["rejected"]] == [NOT_YOURS]
    assert _product(a_mapped).tenant_registration_id == world.a.registration.pk


def test_map_to_other_msps_tenant_is_404(world):
    [b_product] = provision_products(world.b.msp, None)

    response = _api(world.b.msp_token).post(
        "/api/v1/msp/products/map", {"tenant_registration": world.a.registration.pk, "product_ids": [b_product]},
        format="json")

    assert response.status_code == 404
    assert response.json()["code"] == "tenant_registration_not_found"
    assert _product(b_product).tenant_registration_id is None


def test_product_list_excludes_other_msps_products(world, a_mapped):
    response = _api(world.b.msp_token).get("/api/v1/msp/products", {"page_size": 5000})

    listed = {item["product_id"] for item in response.json()["results"]}
    assert response.status_code == 200
    assert a_mapped not in listed


def test_registration_list_excludes_other_msps_tenants(world):
    response = _api(world.b.msp_token).get("/api/v1/msp/tenant-registrations")

    listed = {item["id"] for item in response.json()}
    assert response.status_code == 200
    assert world.a.registration.pk not in listed
    assert world.b.registration.pk in listed


def test_registration_update_of_other_msp_keeps_row(world):
    original_name = world.a.registration.name

    response = _api(world.b.msp_token).patch(f"/api/v1/msp/tenant-registrations/{world.a.registration.pk}",
                                             {"name": "Taken over"}, format="json")

    world.a.registration.refresh_from_db()
    assert response.status_code == 404
    assert world.a.registration.name == original_name


def test_hosted_tenant_delete_of_other_msp_keeps_tenant(world):
    from tenants.models import Tenant

    response = _api(world.b.msp_token).delete(f"/api/v1/msp/hosted-tenants/{world.a.tenant.schema_name}")

    assert response.status_code == 404
    assert Tenant.objects.filter(schema_name=world.a.tenant.schema_name).exists()


def test_portal_selection_with_other_msps_tenant_maps_nothing(world):
    [b_product] = provision_products(world.b.msp, None)

    response = _portal(world.b.msp_user).post("/portal/products/selection/", {
        "action": "map", "product_ids": [b_product], "tenant_registration": world.a.registration.pk})

    assert response.status_code == 302
    assert _product(b_product).tenant_registration_id is None


def test_portal_unmap_other_msps_product_ignored(world, a_mapped):
    _portal(world.b.msp_user).post("/portal/products/selection/", {"action": "unmap", "product_ids": [a_mapped]})

    assert _product(a_mapped).tenant_registration_id == world.a.registration.pk


def test_portal_map_csv_with_other_msps_tenant_rejected(world):
    [b_product] = provision_products(world.b.msp, None)

    response = _portal(world.b.msp_user).post("/portal/products/map-csv/", {
        "map-tenant_registration": world.a.registration.pk, "map-product_ids": b_product})

    assert response.status_code == 400
    assert _product(b_product).tenant_registration_id is None


def test_portal_filter_by_other_msps_tenant_empty(world, a_mapped):
    response = _portal(world.b.msp_user).get("/portal/products/", {"registration": world.a.registration.pk})

    assert response.status_code == 200
    assert a_mapped.encode() not in response.content


def test_portal_tenants_page_hides_other_msps_registrations(world):
    response = _portal(world.b.msp_user).get("/portal/tenants/")

    assert response.status_code == 200
    assert world.a.registration.management_url.encode() not in response.content


def test_portal_dashboard_hides_other_msps_lookups(world, a_mapped):
    lookup = APIClient(HTTP_HOST="localhost").post(
        "/api/v1/ztp/lookup", {"product_id": a_mapped, "facts": {}}, format="json",
        HTTP_AUTHORIZATION=f"Bearer {world.provisioning_key}")

    response = _portal(world.b.msp_user).get("/portal/")

    assert lookup.status_code == 200
    assert a_mapped.encode() not in response.content


def test_portal_other_msps_job_key_hidden(world, matrix_objects):
    from tenants.models import TenantCreationJob

    response = _portal(world.b.msp_user).post(f"/portal/tenants/jobs/{matrix_objects.a_job_id}/access-key/")

    assert response.status_code == 404
    assert TenantCreationJob.objects.get(pk=matrix_objects.a_job_id).access_key_shown is False


def _spare_url(matrix_objects) -> str:
    from tenants.models import Domain
    from tenants.services import management_url_for

    domain = Domain.objects.get(tenant__schema_name=matrix_objects.a_spare_schema)
    return management_url_for(domain.domain)


def test_register_other_msps_hosted_tenant_rejected(world, matrix_objects):
    from msp.models import TenantRegistration

    url = _spare_url(matrix_objects)

    response = _api(world.b.msp_token).post("/api/v1/msp/tenant-registrations", {
        "name": "Squatted", "management_url": url, "access_key": "ztsp_tak_" + "x" * 40}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_registration"
    assert not TenantRegistration.objects.filter(management_url=url).exists()


def test_move_to_other_msps_hosted_tenant_rejected(world, matrix_objects):
    url = _spare_url(matrix_objects)
    original_url = world.b.registration.management_url

    response = _api(world.b.msp_token).patch(f"/api/v1/msp/tenant-registrations/{world.b.registration.pk}",
                                             {"management_url": url}, format="json")

    world.b.registration.refresh_from_db()
    assert response.status_code == 409
    assert world.b.registration.management_url == original_url


def test_owner_registers_own_hosted_tenant(world, matrix_objects):
    response = _api(world.a.msp_token).post("/api/v1/msp/tenant-registrations", {
        "name": "Spare", "management_url": _spare_url(matrix_objects), "access_key": "ztsp_tak_" + "x" * 40},
        format="json")

    assert response.status_code == 201
