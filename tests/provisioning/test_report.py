"""``POST /api/v1/ztp/report``: an EC reports to the Provision Server that it is onboarded."""

from __future__ import annotations

from provisioning.models import Product
from provisioning.services.reports import ztp_status
from tests.factories import provision_products
from tests.provisioning.helpers import post_lookup

REPORT_URL = "/api/v1/ztp/report"


def _report(client, key, body):
    import json

    return client.post(REPORT_URL, data=json.dumps(body), content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {key}")


def _body(world, product_id, **overrides):
    return {"product_id": product_id, "status": "onboarded", "director_url": world.a.registration.management_url,
            "certificate_serial": "0a1b2c", **overrides}


def test_report_marks_product_onboarded(world, public_client):
    product_id = provision_products(world.a.msp, world.a.registration)[0]

    response = _report(public_client, world.provisioning_key, _body(world, product_id))

    assert response.status_code == 200, response.content
    product = Product.objects.get(product_id=product_id)
    assert product.onboarded_certificate_serial == "0a1b2c"
    assert ztp_status(product) == "onboarded"


def test_report_for_other_director_returns_409(world, public_client):
    product_id = provision_products(world.a.msp, world.a.registration)[0]

    response = _report(public_client, world.provisioning_key,
                       _body(world, product_id, director_url=world.b.registration.management_url))

    assert response.status_code == 409
    assert response.json()["code"] == "not_mapped_there"
    assert Product.objects.get(product_id=product_id).onboarded_at is None


def test_report_without_key_returns_401(world, public_client):
    product_id = provision_products(world.a.msp, world.a.registration)[0]

    response = _report(public_client, "nope", _body(world, product_id))

    assert response.status_code == 401


def test_report_unknown_product_returns_404(world, public_client):
    response = _report(public_client, world.provisioning_key,
                       _body(world, "EC100:00000000-0000-4000-8000-0000000000ff"))

    assert response.status_code == 404


def test_report_bad_serial_returns_400(world, public_client):
    product_id = provision_products(world.a.msp, world.a.registration)[0]

    response = _report(public_client, world.provisioning_key, _body(world, product_id, certificate_serial="xyz"))

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_certificate_serial"


def test_remapping_clears_onboarded_status(world, public_client):
    from msp.services.products import map_products_to_tenant, numbered
    from msp.services.registrations import register_tenant
    from tests.factories import VENDOR

    product_id = provision_products(world.a.msp, world.a.registration)[0]
    _report(public_client, world.provisioning_key, _body(world, product_id))
    other = register_tenant(world.a.msp, name="Acme West", management_url="https://acme-west.example.com",
                            access_key="k" * 30, actor=VENDOR)

    map_products_to_tenant(world.a.msp, other, numbered([product_id]), actor=VENDOR)

    assert ztp_status(Product.objects.get(product_id=product_id)) != "onboarded"


def test_lookup_alone_is_not_onboarded(world, public_client):
    product_id = provision_products(world.a.msp, world.a.registration)[0]

    post_lookup(public_client, {"product_id": product_id}, key=world.provisioning_key)

    assert ztp_status(Product.objects.get(product_id=product_id)) == "looked_up"
