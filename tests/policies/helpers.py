"""Policies, tags and ECs made through the real services, and reads of an EC's configuration rows."""

from __future__ import annotations

import time
import uuid

from django_tenants.utils import schema_context

from audit.services import Actor

ADMIN_ACTOR = Actor.system("policies-tests")
POLICIES_URL = "/api/v1/director/policies"


def unique(prefix: str) -> str:
    """Return a name no other test uses: tunnel tests commit their rows, so names must not collide."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_tag(schema: str, name: str | None = None) -> str:
    from onboarding.services import tag_named

    name = name or unique("site")
    with schema_context(schema):
        tag_named(name)
    return name


def make_policy(schema: str, body: dict, *, kind: str = "on_demand", tags=(), name: str | None = None):
    from policies.services import create_policy

    with schema_context(schema):
        return create_policy(name=name or unique("policy"), kind=kind, body=body, tags=tags, actor=ADMIN_ACTOR)


def onboard_with_tags(persona, tags=()) -> str:
    """Onboard a new EC at ``persona``'s tenant with ``tags``; return its Product ID."""
    from onboarding.services import submit_onboard_request
    from tests.factories import make_csr, new_product_id
    from tests.onboarding.helpers import approve_and_issue

    product_id = new_product_id()
    csr_pem, _key = make_csr(product_id)
    schema = persona.tenant.schema_name
    with schema_context(schema):
        submitted = submit_onboard_request(product_id, csr_pem, {}, source_address="127.0.0.1")
    approve_and_issue(schema, submitted.request.pk, tags=tags)
    return product_id


def controller(schema: str, product_id: str):
    from onboarding.models import EdgeController

    with schema_context(schema):
        return EdgeController.objects.get(product_id=product_id)


def desired(schema: str, product_id: str):
    """Return the EC's DesiredConfig row, or None."""
    from policies.models import DesiredConfig

    with schema_context(schema):
        return DesiredConfig.objects.filter(edge_controller__product_id=product_id).first()


def wait_for(read, *, timeout: float = 10.0, interval: float = 0.1):
    """Call ``read`` until it returns a true value or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    value = read()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = read()
    return value
