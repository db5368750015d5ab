"""Tag names: one rule for the approval form, the API and the tag page; compared ignoring case."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from audit.services import Actor
from onboarding.services import InvalidTransition
from tests.onboarding.helpers import approve, onboard

ADMIN = Actor.system("tag-tests")


def test_approve_reuses_tag_in_other_case(world):
    from onboarding.models import Tag
    from onboarding.services_portal import create_tag

    with schema_context("acme"):
        create_tag("East", actor=ADMIN)
    submitted = onboard(world.a)

    approve("acme", submitted.request_id, tags=["east"])

    with schema_context("acme"):
        assert list(Tag.objects.filter(name__iexact="east").values_list("name", flat=True)) == ["East"]


def test_approve_rejects_tag_with_punctuation(world):
    submitted = onboard(world.a)

    with pytest.raises(InvalidTransition, match="only letters, digits"):
        approve("acme", submitted.request_id, tags=["bad tag!!"])


def test_create_tag_rejects_other_case_duplicate(world):
    from onboarding.services_portal import PortalError, create_tag

    with schema_context("acme"):
        create_tag("Retail", actor=ADMIN)

        with pytest.raises(PortalError, match="already exists"):
            create_tag("RETAIL", actor=ADMIN)
