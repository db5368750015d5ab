"""The tag management page: create, rename, delete, and every invalid name reported."""

from __future__ import annotations

import re

from django.test import Client
from django_tenants.utils import schema_context

from tests.conftest import ADMIN_PASSWORD
from tests.onboarding.helpers import approve, onboard
from tests.onboarding.test_portal_decisions import signed_in


def _tag_names(schema: str = "acme") -> set[str]:
    from onboarding.models import Tag

    with schema_context(schema):
        return set(Tag.objects.values_list("name", flat=True))


def _tag(name: str, schema: str = "acme"):
    from onboarding.models import Tag

    with schema_context(schema):
        return Tag.objects.create(name=name)


def _field_errors(html: str, field_id: str) -> str:
    match = re.search(rf'<ul class="errorlist" id="{field_id}_error">(.*?)</ul>', html, re.S)
    return match.group(1) if match else ""


def test_tags_page_lists_tags_with_counts(world):
    submitted = onboard(world.a)
    approve("acme", submitted.request_id, tags=["berlin"])

    html = signed_in(world.a).get("/tags/").content.decode()

    row = re.search(r'<tr data-tag="berlin">(.*?)</tr>', html, re.S).group(1)
    assert ">1</a>" in row


def test_create_tag(world):
    response = signed_in(world.a).post("/tags/create", {"new-name": "  lab  "}, follow=True)

    assert "Created tag lab." in response.content.decode()
    assert "lab" in _tag_names()


def test_create_tag_reports_invalid_names(world):
    client = signed_in(world.a)
    _tag("lab")
    before = _tag_names()

    cases = [("", "Enter a tag name"), ("x" * 65, "use at most 64"), ("a,b", "contains a comma"),
             ("lab", "already exists")]
    for name, message in cases:
        response = client.post("/tags/create", {"new-name": name})
        assert response.status_code == 400, name
        assert message in _field_errors(response.content.decode(), "id_new-name"), name
    assert _tag_names() == before


def test_rename_tag(world):
    tag = _tag("lab")
    others = _tag_names() - {"lab"}

    response = signed_in(world.a).post(f"/tags/{tag.pk}/rename", {f"tag-{tag.pk}-name": "lab-2"}, follow=True)

    assert "Renamed tag lab to lab-2." in response.content.decode()
    assert _tag_names() == others | {"lab-2"}


def test_rename_tag_to_existing_name_reported(world):
    tag = _tag("lab")
    _tag("prod")
    before = _tag_names()

    response = signed_in(world.a).post(f"/tags/{tag.pk}/rename", {f"tag-{tag.pk}-name": "prod"})

    assert response.status_code == 400
    assert "already exists" in _field_errors(response.content.decode(), f"id_tag-{tag.pk}-name")
    assert _tag_names() == before


def test_delete_tag_removes_it_from_ecs(world):
    from onboarding.models import EdgeController

    submitted = onboard(world.a)
    approve("acme", submitted.request_id, tags=["berlin"])
    with schema_context("acme"):
        from onboarding.models import Tag

        tag = Tag.objects.get(name="berlin")

    response = signed_in(world.a).post(f"/tags/{tag.pk}/delete", follow=True)

    assert "Deleted tag berlin; 1 Edge Controller(s) had it." in response.content.decode()
    with schema_context("acme"):
        assert not EdgeController.objects.get(product_id=submitted.product_id).tags.exists()


def test_tag_actions_on_other_tenant_tag_return_404(world):
    from onboarding.models import Tag

    with schema_context("acme"):
        acme_ids = set(Tag.objects.values_list("pk", flat=True))
    # Tags committed by other tests may share ids across schemas; pick an id that acme lacks.
    at_globex = _tag("globex-only", schema="globex")
    while at_globex.pk in acme_ids:
        at_globex = _tag(f"globex-{at_globex.pk}", schema="globex")
    client = signed_in(world.a)

    assert client.post(f"/tags/{at_globex.pk}/rename", {f"tag-{at_globex.pk}-name": "x"}).status_code == 404
    assert client.post(f"/tags/{at_globex.pk}/delete").status_code == 404
    assert "globex-only" in _tag_names("globex")
    assert at_globex.name in _tag_names("globex")


def test_tags_page_anonymous_redirects_to_login(world):
    response = Client(HTTP_HOST=world.a.domain).get("/tags/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_tag_create_by_get_not_allowed(world):
    assert signed_in(world.a).get("/tags/create").status_code == 405


def test_other_tenant_admin_cannot_sign_in(world):
    client = Client(HTTP_HOST=world.a.domain)

    response = client.post("/accounts/login/", {"username": world.b.tenant_admin_username,
                                                "password": ADMIN_PASSWORD})

    assert response.status_code == 200
    assert client.get("/tags/").status_code == 302


def test_session_of_one_tenant_invalid_on_other_pages(world):
    client = signed_in(world.a)

    for url in ("/tags/", "/controllers/1/"):
        response = client.get(url, HTTP_HOST=world.b.domain)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/"), url
