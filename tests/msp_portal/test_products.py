"""Dashboard, claim, product list, mapping and product detail pages, each scoped to the user's MSP."""

from __future__ import annotations

import uuid

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from msp.services.products import map_products_to_tenant, numbered
from provisioning.models import LookupEvent, Product
from tests.factories import VENDOR, new_product_id
from tests.msp.conftest import allocated_products, claimed_products
from tests.msp_portal.conftest import field_errors, register_external

CLAIM_URL = "/portal/claim/"
PRODUCTS_URL = "/portal/products/"


def lookup_event(product_id: str, code: str = "not_mapped", status: int = 409) -> LookupEvent:
    return LookupEvent.objects.create(product_id=product_id, access_key_id="k1", status=status, code=code,
                                      source_address="192.0.2.10")


# Dashboard.


def test_dashboard_counts_each_state(fresh):
    allocated_products(fresh.msp, 2)
    claimed = claimed_products(fresh.msp, 3)
    registration = register_external(fresh.msp)
    map_products_to_tenant(fresh.msp, registration, numbered(claimed[:1]), actor=VENDOR)
    Product.objects.filter(product_id=claimed[0]).update(last_lookup_at=timezone.now())

    response = fresh.client.get("/portal/")

    assert response.status_code == 200
    assert response.context["counts"] == {"allocated": 5, "claimed": 3, "mapped": 1, "looked_up": 1,
                                          "onboarded": 0}


def test_dashboard_counts_in_one_query(fresh):
    claimed_products(fresh.msp, 3)

    with CaptureQueriesContext(connection) as queries:
        fresh.client.get("/portal/")

    counting = [query["sql"] for query in queries.captured_queries if "COUNT(" in query["sql"]]
    assert len(counting) == 1


def test_dashboard_lists_only_own_recent_lookups(fresh, world):
    own = claimed_products(fresh.msp, 1)[0]
    other = claimed_products(world.b.msp, 1)[0]
    lookup_event(own)
    lookup_event(other)

    response = fresh.client.get("/portal/")

    listed = [event.product_id for event in response.context["recent_lookups"]]
    assert listed == [own]
    assert other not in response.content.decode()


# Claim.


def test_claim_page_renders_form(client_a):
    response = client_a.get(CLAIM_URL)

    body = response.content.decode()
    assert response.status_code == 200
    assert 'for="id_csv_file"' in body
    assert 'for="id_product_ids"' in body
    assert "csrfmiddlewaretoken" in body


def test_claim_by_paste_shows_every_row(world, client_a):
    mine = allocated_products(world.a.msp, 2)
    theirs = allocated_products(world.b.msp, 1)[0]
    pasted = "\n".join([mine[0], mine[1], theirs, "garbage", mine[0].upper()])

    response = client_a.post(CLAIM_URL, {"product_ids": pasted})

    assert response.status_code == 200
    table = response.context["table"]
    assert (table.changed, table.unchanged, table.rejected, table.total) == (2, 0, 3, 5)
    outcomes = {row.position: (row.outcome, row.rejected) for row in table.rows}
    assert outcomes[1] == ("claimed", False)
    assert outcomes[3] == ("not allocated to this MSP", True)
    assert outcomes[4][1] is True
    assert outcomes[5] == ("duplicate of position 1", True)
    assert Product.objects.filter(product_id__in=mine, claimed_at__isnull=False).count() == 2
    assert Product.objects.get(product_id=theirs).claimed_at is None


def test_claim_by_csv_reports_line_numbers(world, client_a):
    mine = allocated_products(world.a.msp, 1)[0]
    content = f"\ufeffproduct_id;serial\r\n{mine};S1\r\n\r\nEC100:bad;S2\r\n".encode()
    upload = SimpleUploadedFile("claim.csv", content, content_type="text/csv")

    response = client_a.post(CLAIM_URL, {"csv_file": upload})

    rows = {row.position: row for row in response.context["table"].rows}
    assert rows[2].outcome == "claimed"
    assert rows[4].rejected


def test_claim_again_reports_already_claimed(world, client_a):
    mine = claimed_products(world.a.msp, 1)[0]

    response = client_a.post(CLAIM_URL, {"product_ids": mine})

    assert response.context["table"].rows[0].outcome == "already claimed"


def test_claim_without_input_reports_field(client_a):
    response = client_a.post(CLAIM_URL, {})

    assert "product_ids" in field_errors(response)
    assert 'class="errorlist' in response.content.decode()


def test_claim_with_file_and_paste_reports_field(world, client_a):
    upload = SimpleUploadedFile("claim.csv", b"EC100:x\n", content_type="text/csv")

    response = client_a.post(CLAIM_URL, {"csv_file": upload, "product_ids": new_product_id()})

    assert "both" in field_errors(response)["product_ids"][0]


def test_claim_unreadable_csv_reports_file_field(client_a):
    upload = SimpleUploadedFile("claim.csv", b"EC100:abc\n\xc3\x28\n", content_type="text/csv")

    response = client_a.post(CLAIM_URL, {"csv_file": upload})

    assert "line 2 is not valid UTF-8" in field_errors(response)["csv_file"][0]


def test_claim_header_only_reports_no_ids(client_a):
    upload = SimpleUploadedFile("claim.csv", b"product_id\n\n", content_type="text/csv")

    response = client_a.post(CLAIM_URL, {"csv_file": upload})

    assert "No Product IDs" in field_errors(response)["csv_file"][0]


# Product list.


def listed_ids(response) -> list[str]:
    return [product.product_id for product in response.context["page"].products]


def test_product_list_shows_only_own_products(world, client_a):
    mine = allocated_products(world.a.msp, 1)[0]
    theirs = allocated_products(world.b.msp, 1)[0]

    response = client_a.get(PRODUCTS_URL)

    body = response.content.decode()
    assert response.status_code == 200
    assert theirs not in body
    assert listed_ids(client_a.get(PRODUCTS_URL, {"q": mine})) == [mine]


def test_product_list_filters(fresh):
    allocated = allocated_products(fresh.msp, 1)
    claimed = claimed_products(fresh.msp, 2)
    registration = register_external(fresh.msp)
    map_products_to_tenant(fresh.msp, registration, numbered(claimed[:1]), actor=VENDOR)

    assert listed_ids(fresh.client.get(PRODUCTS_URL, {"claimed": "no"})) == allocated
    assert sorted(listed_ids(fresh.client.get(PRODUCTS_URL, {"claimed": "yes"}))) == sorted(claimed)
    assert listed_ids(fresh.client.get(PRODUCTS_URL, {"mapped": "yes"})) == claimed[:1]
    assert sorted(listed_ids(fresh.client.get(PRODUCTS_URL, {"mapped": "no"}))) == sorted(allocated + claimed[1:])
    assert listed_ids(fresh.client.get(PRODUCTS_URL, {"registration": registration.pk})) == claimed[:1]


def test_product_list_searches_by_id_and_uuid_prefix(fresh):
    product_ids = allocated_products(fresh.msp, 3)
    target = product_ids[1]
    uuid_prefix = target.split(":")[1][:8]

    assert listed_ids(fresh.client.get(PRODUCTS_URL, {"q": target.lower()})) == [target]
    assert target in listed_ids(fresh.client.get(PRODUCTS_URL, {"q": uuid_prefix}))


def test_product_list_search_never_finds_other_msp(fresh, world):
    theirs = allocated_products(world.b.msp, 1)[0]

    response = fresh.client.get(PRODUCTS_URL, {"q": theirs})

    assert listed_ids(response) == []


def test_product_list_rejects_other_msp_registration_filter(fresh, world):
    allocated_products(fresh.msp, 1)

    response = fresh.client.get(PRODUCTS_URL, {"registration": world.b.registration.pk})

    assert "registration" in response.context["filter_form"].errors
    assert listed_ids(response) == []


def test_product_list_pages_by_key(fresh):
    allocated_products(fresh.msp, 205)

    first = fresh.client.get(PRODUCTS_URL)
    first_page = first.context["page"]
    second = fresh.client.get(PRODUCTS_URL + first.context["next_link"])
    third = fresh.client.get(PRODUCTS_URL + second.context["next_link"])
    back = fresh.client.get(PRODUCTS_URL + second.context["previous_link"])

    assert len(first_page.products) == 100
    assert first.context["previous_link"] is None
    assert len(second.context["page"].products) == 100
    assert len(third.context["page"].products) == 5
    assert third.context["next_link"] is None
    assert listed_ids(back) == listed_ids(first)
    assert back.context["previous_link"] is None
    assert len(set(listed_ids(first)) | set(listed_ids(second)) | set(listed_ids(third))) == 205


def test_product_list_never_counts_all_rows(fresh):
    allocated_products(fresh.msp, 3)

    with CaptureQueriesContext(connection) as queries:
        fresh.client.get(PRODUCTS_URL, {"claimed": "no"})

    product_queries = [query["sql"] for query in queries.captured_queries if "provisioning_product" in query["sql"]]
    assert not any("COUNT(" in sql for sql in product_queries)
    assert not any("OFFSET" in sql for sql in product_queries)


# Map and unmap the ticked products.


def test_selection_maps_ticked_products(world, client_a):
    claimed = claimed_products(world.a.msp, 2)
    registration = register_external(world.a.msp)

    response = client_a.post("/portal/products/selection/", {
        "action": "map", "tenant_registration": registration.pk, "product_ids": claimed,
        "return_query": "claimed=yes",
    })

    assert response.status_code == 302
    assert response["Location"] == "/portal/products/?claimed=yes"
    assert Product.objects.filter(product_id__in=claimed, tenant_registration=registration).count() == 2


def test_selection_unmaps_ticked_products(world, client_a):
    claimed = claimed_products(world.a.msp, 1)
    registration = register_external(world.a.msp)
    map_products_to_tenant(world.a.msp, registration, numbered(claimed), actor=VENDOR)

    client_a.post("/portal/products/selection/", {"action": "unmap", "product_ids": claimed})

    assert Product.objects.get(product_id=claimed[0]).tenant_registration is None


def test_selection_reports_rejected_products(world, client_a):
    unclaimed = allocated_products(world.a.msp, 1)[0]
    theirs = claimed_products(world.b.msp, 1)[0]
    registration = register_external(world.a.msp)

    response = client_a.post("/portal/products/selection/", {
        "action": "map", "tenant_registration": registration.pk, "product_ids": [unclaimed, theirs],
    }, follow=True)

    shown = [str(message) for message in response.context["messages"]]
    assert any(unclaimed in text and "not claimed" in text for text in shown)
    assert any(theirs in text and "not allocated to this MSP" in text for text in shown)
    assert Product.objects.get(product_id=theirs).tenant_registration_id != registration.pk


def test_selection_requires_tenant_and_products(world, client_a):
    response = client_a.post("/portal/products/selection/", {"action": "map"}, follow=True)

    shown = " ".join(str(message) for message in response.context["messages"])
    assert "Tick at least one product" in shown
    assert "Choose the tenant" in shown


def test_selection_rejects_other_msp_registration(world, client_a):
    claimed = claimed_products(world.a.msp, 1)

    response = client_a.post("/portal/products/selection/", {
        "action": "map", "tenant_registration": world.b.registration.pk, "product_ids": claimed,
    }, follow=True)

    shown = " ".join(str(message) for message in response.context["messages"])
    assert "Select a valid choice" in shown
    assert Product.objects.get(product_id=claimed[0]).tenant_registration is None


def test_selection_return_query_cannot_leave_the_page(world, client_a):
    response = client_a.post("/portal/products/selection/", {
        "action": "unmap", "product_ids": [new_product_id()], "return_query": "//evil.example/x?a=1",
    })

    assert response["Location"].startswith("/portal/products/?")


def test_map_by_csv_shows_result_table(world, client_a):
    claimed = claimed_products(world.a.msp, 2)
    registration = register_external(world.a.msp)
    upload = SimpleUploadedFile("map.csv", "\n".join([*claimed, "nonsense"]).encode(), content_type="text/csv")

    response = client_a.post("/portal/products/map-csv/", {"map-tenant_registration": registration.pk,
                                                          "map-csv_file": upload})

    table = response.context["table"]
    assert (table.changed, table.rejected) == (2, 1)
    assert table.rows[0].outcome == "mapped"
    assert Product.objects.filter(product_id__in=claimed, tenant_registration=registration).count() == 2


def test_map_by_csv_reports_every_invalid_field(world, client_a):
    response = client_a.post("/portal/products/map-csv/", {"map-tenant_registration": world.b.registration.pk})

    assert response.status_code == 400
    errors = field_errors(response)
    assert "tenant_registration" in errors
    assert "product_ids" in errors


# Product detail.


def test_product_detail_shows_route_and_history(world, client_a):
    product_id = claimed_products(world.a.msp, 1)[0]
    lookup_event(product_id)

    response = client_a.get(f"/portal/products/{product_id}/")

    body = response.content.decode()
    assert response.status_code == 200
    assert response.context["route"].decision.status == 409
    assert "Not mapped to a tenant yet" in body
    assert [event.product_id for event in response.context["history"]] == [product_id]


def test_product_detail_of_mapped_product_names_director(world, client_a):
    product_id = claimed_products(world.a.msp, 1)[0]
    map_products_to_tenant(world.a.msp, world.a.registration, numbered([product_id]), actor=VENDOR)

    response = client_a.get(f"/portal/products/{product_id}/")

    assert response.context["route"].decision.status == 200
    assert world.a.registration.management_url in response.content.decode()


def test_product_detail_hides_history_before_allocation(world, client_a):
    product_id = allocated_products(world.a.msp, 1)[0]
    old = lookup_event(product_id, code="product_not_found", status=404)
    LookupEvent.objects.filter(pk=old.pk).update(at=timezone.now() - timezone.timedelta(days=1))

    response = client_a.get(f"/portal/products/{product_id}/")

    assert list(response.context["history"]) == []


def test_product_detail_of_other_msp_is_404(world, client_a):
    theirs = allocated_products(world.b.msp, 1)[0]
    missing = f"EC100:{uuid.uuid4()}"

    assert client_a.get(f"/portal/products/{theirs}/").status_code == 404
    assert client_a.get(f"/portal/products/{missing}/").status_code == 404
    assert client_a.get("/portal/products/not-a-product-id/").status_code == 404


def test_claim_unreadable_file_shows_one_error(client_a):
    upload = SimpleUploadedFile("claim.csv", b"EC100:\xff\xfe\x00garbage\n", content_type="text/csv")

    response = client_a.post(CLAIM_URL, {"csv_file": upload})

    errors = response.context["form"].errors["csv_file"]
    assert len(errors) == 1
    assert errors[0].startswith("The CSV cannot be read")
