"""Keyset pages of the pending and onboarded lists, and the Product ID search of the onboarded list."""

from __future__ import annotations

import datetime
import html as html_lib
import re
import uuid

from django_tenants.utils import schema_context

from tests.onboarding.test_portal_decisions import signed_in
from tests.onboarding.test_portal_fleet import _onboarded, _onboarded_rows

PAGE_SIZE = 100


def _add_onboarded(schema: str, count: int, *, tag: str | None = None, model: str = "PG100") -> list[str]:
    """Insert ``count`` onboarded ECs without certificates and return their Product IDs, oldest first."""
    from onboarding.models import EdgeController, Tag

    product_ids = [f"{model}:{uuid.uuid4()}" for _ in range(count)]
    with schema_context(schema):
        controllers = EdgeController.objects.bulk_create(
            EdgeController(product_id=product_id, state=EdgeController.State.ONBOARDED) for product_id in product_ids
        )
        if tag is not None:
            Tag.objects.create(name=tag).edge_controllers.add(*controllers)
    return product_ids


def _add_pending(schema: str, count: int) -> list[str]:
    """Insert ``count`` pending requests older than any other and return their Product IDs, oldest first."""
    from onboarding.models import EdgeController, OnboardRequest

    product_ids = [f"PG200:{uuid.uuid4()}" for _ in range(count)]
    start = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    with schema_context(schema):
        controllers = EdgeController.objects.bulk_create(EdgeController(product_id=value) for value in product_ids)
        requests = OnboardRequest.objects.bulk_create(
            OnboardRequest(edge_controller=controller, product_id=controller.product_id, csr_pem="-",
                           csr_fingerprint=f"{index:064x}")
            for index, controller in enumerate(controllers)
        )
        # created_at is set on insert, so the order is fixed afterwards, one second apart.
        for index, onboard_request in enumerate(requests):
            OnboardRequest.objects.filter(pk=onboard_request.pk).update(
                created_at=start + datetime.timedelta(seconds=index))
    return product_ids


def _pending_rows(html: str) -> list[str]:
    section = re.search(r'<table id="pending">(.*?)</table>', html, re.S).group(1)
    return re.findall(r'<tr data-product-id="([^"]+)">', section)


def _link(html: str, link_id: str) -> str | None:
    match = re.search(rf'<a href="([^"]+)" rel="(?:next|prev)" id="{link_id}">', html)
    return html_lib.unescape(match.group(1)) if match else None


def _field_errors(html: str, field_id: str) -> str:
    match = re.search(rf'<ul class="errorlist" id="{field_id}_error">(.*?)</ul>', html, re.S)
    return match.group(1) if match else ""


def test_onboarded_pages_keep_filters(world):
    tagged = _add_onboarded("acme", PAGE_SIZE + 30, tag="paged")
    _add_onboarded("acme", 5)
    client = signed_in(world.a)

    first_html = client.get("/", {"tag": "paged", "status": "never"}).content.decode()
    first = _onboarded_rows(first_html)
    next_link = _link(first_html, "onboarded-next")

    assert first == tagged[::-1][:PAGE_SIZE]
    assert next_link is not None
    assert "tag=paged" in next_link
    assert "status=never" in next_link
    assert _link(first_html, "onboarded-previous") is None

    second_html = client.get("/" + next_link).content.decode()
    second = _onboarded_rows(second_html)
    previous_link = _link(second_html, "onboarded-previous")

    assert second == tagged[::-1][PAGE_SIZE:]
    assert _link(second_html, "onboarded-next") is None
    assert previous_link is not None
    assert "tag=paged" in previous_link
    assert _onboarded_rows(client.get("/" + previous_link).content.decode()) == first


def test_onboarded_page_of_100_without_filters(world):
    added = _add_onboarded("acme", PAGE_SIZE + 1)
    html = signed_in(world.a).get("/").content.decode()

    assert _onboarded_rows(html) == added[::-1][:PAGE_SIZE]
    assert _link(html, "onboarded-next") is not None


def test_pending_pages_in_age_order(world):
    added = _add_pending("acme", PAGE_SIZE + 20)
    client = signed_in(world.a)

    first_html = client.get("/", {"status": "online"}).content.decode()
    next_link = _link(first_html, "pending-next")

    assert _pending_rows(first_html) == added[:PAGE_SIZE]
    assert next_link is not None
    assert "status=online" in next_link

    second_html = client.get("/" + next_link).content.decode()
    second = _pending_rows(second_html)
    previous_link = _link(second_html, "pending-previous")

    assert second[:20] == added[PAGE_SIZE:]
    assert previous_link is not None
    assert "status=online" in previous_link
    assert _pending_rows(client.get("/" + previous_link).content.decode()) == added[:PAGE_SIZE]


def test_pending_link_keeps_onboarded_cursor(world):
    _add_pending("acme", PAGE_SIZE + 1)
    _add_onboarded("acme", PAGE_SIZE + 1)
    client = signed_in(world.a)
    onboarded_next = _link(client.get("/").content.decode(), "onboarded-next")
    after = re.search(r"after=(\d+)", onboarded_next).group(1)

    html = client.get("/" + onboarded_next).content.decode()

    assert f"after={after}" in _link(html, "pending-next")


def test_unknown_cursor_shows_first_page(world):
    added = _add_pending("acme", 3)

    html = signed_in(world.a).get("/", {"pending_after": str(uuid.uuid4()), "after": "x"}).content.decode()

    assert _pending_rows(html)[:3] == added


def test_search_by_full_product_id(world):
    wanted, _other = _add_onboarded("acme", 2)
    model, uuid_text = wanted.split(":")

    # Lower-case model number and braces are the same Product ID.
    rows = _onboarded_rows(signed_in(world.a).get("/", {"q": f" {model.lower()}:{{{uuid_text.upper()}}} "})
                           .content.decode())

    assert rows == [wanted]


def test_search_by_uuid_prefix(world):
    added = _add_onboarded("acme", 40, model="PX300")
    wanted = added[7]
    digits = wanted.split(":")[1].replace("-", "")[:10]
    expected = [value for value in added if value.split(":")[1].replace("-", "").startswith(digits)]

    # The prefix is typed without hyphens; the search puts them back.
    rows = _onboarded_rows(signed_in(world.a).get("/", {"q": f"px300:{digits.upper()}"}).content.decode())

    assert wanted in rows
    assert sorted(rows) == sorted(expected)


def test_search_by_model_number_only(world):
    added = _add_onboarded("acme", 3, model="PY400")

    rows = _onboarded_rows(signed_in(world.a).get("/", {"q": "PY400:"}).content.decode())

    assert sorted(rows) == sorted(added)


def test_search_reports_invalid_term(world):
    client = signed_in(world.a)

    no_model = client.get("/", {"q": "7c9e6679"}).content.decode()
    bad_hex = client.get("/", {"q": "EC100:xyz"}).content.decode()

    assert "is not a Product ID" in _field_errors(no_model, "id_q")
    assert "is not the start of a UUID" in _field_errors(bad_hex, "id_q")


def test_other_tenant_rows_never_listed(world):
    at_globex, _ = _onboarded(world.b, "globex")
    globex_added = _add_onboarded("globex", PAGE_SIZE + 1)
    globex_pending = _add_pending("globex", 2)
    client = signed_in(world.a)

    searched = _onboarded_rows(client.get("/", {"q": at_globex.product_id}).content.decode())
    by_prefix = _onboarded_rows(client.get("/", {"q": "PG100:"}).content.decode())
    first_html = client.get("/").content.decode()

    assert searched == []
    assert not set(globex_added) & set(by_prefix)
    assert not set(globex_added) & set(_onboarded_rows(first_html))
    assert not set(globex_pending) & set(re.findall(r'data-product-id="([^"]+)"', first_html))
    assert at_globex.product_id not in first_html
