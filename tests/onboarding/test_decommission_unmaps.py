"""Decommissioning an EC at its Director unmaps its product at the Provision Server, and only there."""

from __future__ import annotations

from msp.services.products import map_products_to_tenant, numbered
from provisioning.models import Product
from tests.factories import VENDOR, provision_products
from tests.onboarding.helpers import CONTROLLERS_URL, approve_and_issue, onboard
from tests.onboarding.test_director_lifecycle_api import _as_admin
from tests.provisioning.helpers import post_lookup


def _decommission(persona, product_id: str):
    return _as_admin(persona).post(f"{CONTROLLERS_URL}/{product_id}/decommission", {}, format="json")


def _onboarded_mapped(persona) -> str:
    product_id = provision_products(persona.msp, persona.registration)[0]
    approve_and_issue(persona.tenant.schema_name, onboard(persona, product_id).request_id)
    return product_id


def test_decommission_unmaps_product_so_lookup_returns_409(world, public_client):
    product_id = _onboarded_mapped(world.a)

    assert _decommission(world.a, product_id).status_code == 200
    response = post_lookup(public_client, {"product_id": product_id}, key=world.provisioning_key)

    assert response.status_code == 409
    assert response.json()["code"] == "not_mapped"


def test_decommission_is_audited_as_unmap(world):
    from audit.models import AuditEvent

    product_id = _onboarded_mapped(world.a)

    _decommission(world.a, product_id)

    event = AuditEvent.objects.get(action="product.unmap", object_id=product_id)
    assert event.details["reason"] == "decommissioned at tenant acme"


def test_decommission_leaves_product_mapped_to_another_tenant(world):
    product_id = _onboarded_mapped(world.a)
    # The device was mapped elsewhere after it onboarded at acme.
    Product.objects.filter(product_id=product_id).update(tenant_registration=world.b.registration)

    _decommission(world.a, product_id)

    assert Product.objects.get(product_id=product_id).tenant_registration_id == world.b.registration.pk


def test_remapped_product_looks_up_again_after_decommission(world, public_client):
    product_id = _onboarded_mapped(world.a)
    _decommission(world.a, product_id)

    map_products_to_tenant(world.a.msp, world.a.registration, numbered([product_id]), actor=VENDOR)
    response = post_lookup(public_client, {"product_id": product_id}, key=world.provisioning_key)

    assert response.status_code == 200, response.content
