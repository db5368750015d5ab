"""The EC detail timeline shows the ZTP lookup time that the EC reports in its onboard facts."""

from __future__ import annotations

from django_tenants.utils import schema_context

from tests.onboarding.helpers import onboard
from tests.onboarding.test_portal_decisions import signed_in


def _controller(product_id: str):
    from onboarding.models import EdgeController

    with schema_context("acme"):
        return EdgeController.objects.get(product_id=product_id)


def test_timeline_shows_reported_lookup(world):
    submitted = onboard(world.a, facts={"ztp_lookup_at": "2026-12-04T20:00:00+00:00"})
    controller = _controller(submitted.product_id)

    html = signed_in(world.a).get(f"/controllers/{controller.pk}/").content.decode()

    assert "Looked up its Director (reported by the EC)" in html


def test_timeline_ignores_invalid_lookup_time(world):
    submitted = onboard(world.a, facts={"ztp_lookup_at": "yesterday"})
    controller = _controller(submitted.product_id)

    html = signed_in(world.a).get(f"/controllers/{controller.pk}/").content.decode()

    assert "Looked up its Director" not in html
