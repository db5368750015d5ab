"""The vendor admin for products and access keys, built for millions of rows."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from msp.models import MSP
from provisioning import admin as provisioning_admin
from provisioning.admin import CappedCountPaginator
from provisioning.models import ImportBatch, Product, ProvisioningAccessKey
from provisioning.services.access_keys import authenticate_access_key
from tests.conftest import ADMIN_PASSWORD
from tests.provisioning.helpers import csv_bytes, import_csv

CHANGELIST = "/admin/provisioning/product/"


@pytest.fixture
def staff(world) -> Client:
    client = Client(HTTP_HOST="localhost")
    assert client.login(username=world.vendor_admin.username, password=ADMIN_PASSWORD)
    return client


def _import(*product_ids: str) -> None:
    import_csv(csv_bytes("product_id,serial", *[f"{product_id},SN-{index}" for index, product_id in
                                               enumerate(product_ids)]))


def _listed(response) -> list[str]:
    return [product.product_id for product in response.context["cl"].result_list]


def test_search_full_product_id_any_spelling(staff):
    target = "EC100:5f0c1e2a-0000-4000-8000-00000000aaaa"
    _import(target, "EC100:5f0c1e2a-0000-4000-8000-00000000bbbb")

    response = staff.get(CHANGELIST, {"q": " ec100:{5F0C1E2A-0000-4000-8000-00000000AAAA} "})

    assert _listed(response) == [target]


def test_search_uuid_prefix(staff):
    _import("EC100:abcd1234-0000-4000-8000-000000000001", "EC200:abcd1234-0000-4000-8000-000000000002",
            "EC100:abce0000-0000-4000-8000-000000000003")

    response = staff.get(CHANGELIST, {"q": "abcd1234"})

    assert sorted(_listed(response)) == ["EC100:abcd1234-0000-4000-8000-000000000001",
                                         "EC200:abcd1234-0000-4000-8000-000000000002"]


def test_search_model_and_uuid_prefix(staff):
    _import("EC100:abcd5678-0000-4000-8000-000000000001", "EC200:abcd5678-0000-4000-8000-000000000002")

    response = staff.get(CHANGELIST, {"q": "ec200:ABCD56"})

    assert _listed(response) == ["EC200:abcd5678-0000-4000-8000-000000000002"]


def test_search_serial_number(staff):
    _import("EC100:0badc0de-0000-4000-8000-000000000001")

    response = staff.get(CHANGELIST, {"q": "SN-0"})

    assert "EC100:0badc0de-0000-4000-8000-000000000001" in _listed(response)


def test_search_uses_no_like_scan(staff):
    with CaptureQueriesContext(connection) as queries:
        staff.get(CHANGELIST, {"q": "abcd"})

    product_queries = [query["sql"] for query in queries if "provisioning_product" in query["sql"]]
    assert product_queries
    assert not any("LIKE" in sql.upper() for sql in product_queries)


def test_paginator_caps_filtered_count(monkeypatch, world):
    _import(*[f"EC100:00000000-0000-4000-8000-{index:012d}" for index in range(5)])
    monkeypatch.setattr(provisioning_admin, "COUNT_CAP", 3)

    paginator = CappedCountPaginator(Product.objects.filter(model_number="EC100").order_by("pk"), 2)

    assert paginator.count == 4


def test_disable_action_sets_state_and_audits(staff):
    product_id = "EC100:d15ab1ed-0000-4000-8000-000000000001"
    _import(product_id)
    pk = Product.objects.get(product_id=product_id).pk

    staff.post(CHANGELIST, {"action": "disable", "_selected_action": [pk]})

    assert Product.objects.get(pk=pk).state == Product.State.DISABLED
    assert AuditEvent.objects.filter(action="product.disabled", object_id=product_id).exists()


def test_decommission_action_sets_state(staff):
    product_id = "EC100:dec0dec0-0000-4000-8000-000000000001"
    _import(product_id)
    pk = Product.objects.get(product_id=product_id).pk

    staff.post(CHANGELIST, {"action": "decommission", "_selected_action": [pk]})

    assert Product.objects.get(pk=pk).state == Product.State.DECOMMISSIONED


def test_allocate_action_allocates_to_chosen_msp(staff, world):
    product_id = "EC100:a110ca7e-0000-4000-8000-000000000001"
    _import(product_id)
    pk = Product.objects.get(product_id=product_id).pk

    staff.post(CHANGELIST, {"action": "allocate_to_msp", "_selected_action": [pk], "msp": world.a.msp.pk})

    assert Product.objects.get(pk=pk).msp == world.a.msp


def test_allocate_action_without_msp_changes_nothing(staff):
    product_id = "EC100:a110ca7e-0000-4000-8000-000000000002"
    _import(product_id)
    pk = Product.objects.get(product_id=product_id).pk

    response = staff.post(CHANGELIST, {"action": "allocate_to_msp", "_selected_action": [pk]}, follow=True)

    assert Product.objects.get(pk=pk).msp is None
    assert "Choose an MSP" in response.content.decode()


def test_add_access_key_shows_key_once(staff):
    response = staff.post("/admin/provisioning/provisioningaccesskey/add/",
                          {"name": "line 7", "allowed_models": "ec100, EC200"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key_text = response.context["plaintext"]
    access_key = ProvisioningAccessKey.objects.get(name="line 7")
    assert key_text.startswith("ztsp_pk_")
    assert key_text in response.content.decode()
    assert not list(response.context["messages"])
    assert authenticate_access_key(key_text).pk == access_key.pk
    assert access_key.allowed_models == "EC100,EC200"
    assert key_text not in access_key.key_hash


def test_add_access_key_rejects_bad_model(staff):
    response = staff.post("/admin/provisioning/provisioningaccesskey/add/",
                          {"name": "bad", "allowed_models": "EC 100"})

    assert response.status_code == 200
    assert "invalid model number" in response.content.decode()
    assert not ProvisioningAccessKey.objects.filter(name="bad").exists()


def test_import_batches_are_read_only(staff):
    import_csv(csv_bytes("EC100:0000beef-0000-4000-8000-000000000001"))
    batch = ImportBatch.objects.order_by("-pk").first()

    response = staff.post(f"/admin/provisioning/importbatch/{batch.pk}/change/", {"rows": 999})

    batch.refresh_from_db()
    assert batch.rows == 1
    assert response.status_code in (200, 403)


def test_audit_log_cannot_be_deleted(staff):
    event = AuditEvent.objects.order_by("-pk").first()

    response = staff.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"})

    assert response.status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_non_staff_user_cannot_open_admin(world):
    user = get_user_model().objects.create_user("not-staff", password=ADMIN_PASSWORD)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)

    response = client.get(CHANGELIST)

    assert response.status_code == 302
    assert MSP.objects.exists()


def test_admin_static_files_are_served(world):
    response = Client(HTTP_HOST="localhost").get("/static/admin/css/base.css")

    assert response.status_code == 200


def test_api_docs_use_no_cdn(world):
    response = Client(HTTP_HOST="localhost").get("/api/docs/")

    assert response.status_code == 200
    assert "cdn.jsdelivr.net" not in response.content.decode()
    assert "/static/drf_spectacular_sidecar/" in response.content.decode()


def test_product_page_hides_secret_hash(staff):
    secret_hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    product_id = "EC100:5ec7e700-0000-4000-8000-000000000001"
    import_csv(csv_bytes("product_id,secret_sha256", f"{product_id},{secret_hash}"))
    pk = Product.objects.get(product_id=product_id).pk

    response = staff.get(f"{CHANGELIST}{pk}/change/")

    assert response.status_code == 200
    assert secret_hash not in response.content.decode()
    assert "stored, not shown" in response.content.decode()


def test_product_page_shows_public_key(staff):
    from cryptography.hazmat.primitives import serialization

    from tests.factories import make_key

    public_pem = make_key().public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    product_id = "EC100:5ec7e700-0000-4000-8000-000000000002"
    import_csv(csv_bytes("product_id,public_key", f'{product_id},"{public_pem}"'))
    pk = Product.objects.get(product_id=product_id).pk

    response = staff.get(f"{CHANGELIST}{pk}/change/")

    assert public_pem.splitlines()[1] in response.content.decode()
