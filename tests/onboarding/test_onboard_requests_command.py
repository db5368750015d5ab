"""``manage.py onboard_requests SCHEMA list|approve|reject``."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import schema_context

from tests.onboarding.helpers import onboard


def _run(*args) -> tuple[str, str]:
    stdout, stderr = StringIO(), StringIO()
    call_command("onboard_requests", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def _status(schema: str, request_id: str) -> str:
    from onboarding.models import OnboardRequest

    with schema_context(schema):
        return OnboardRequest.objects.get(pk=request_id).status


def _pending_count(schema: str) -> int:
    # Live-stack tests commit their requests, so the tenant may hold pending requests of other tests.
    from onboarding.models import OnboardRequest

    with schema_context(schema):
        return OnboardRequest.objects.filter(status="pending").count()


def _tags(schema: str, product_id: str) -> set[str]:
    from onboarding.models import EdgeController

    with schema_context(schema):
        return set(EdgeController.objects.get(product_id=product_id).tags.values_list("name", flat=True))


def test_list_shows_pending_requests(world):
    first = onboard(world.a)
    conflicting = onboard(world.a, first.product_id)

    stdout, _ = _run("acme", "list")

    lines = stdout.splitlines()
    assert f"{first.request_id} {first.product_id} from 127.0.0.1" in lines
    assert f"{conflicting.request_id} {conflicting.product_id} from 127.0.0.1 CONFLICT" in lines
    assert lines[-1] == f"{_pending_count('acme')} pending."


def test_list_omits_other_tenant(world):
    at_globex = onboard(world.b)

    stdout, _ = _run("acme", "list")

    assert at_globex.product_id not in stdout


def test_approve_all_pending_with_tags(world):
    first = onboard(world.a)
    second = onboard(world.a)
    at_globex = onboard(world.b)
    pending = _pending_count("acme")

    stdout, _ = _run("acme", "approve", "--all-pending", "--tags", "a,b")

    assert _status("acme", first.request_id) == "approved"
    assert _status("acme", second.request_id) == "approved"
    assert _tags("acme", first.product_id) == {"a", "b"}
    assert _tags("acme", second.product_id) == {"a", "b"}
    assert _status("globex", at_globex.request_id) == "pending"
    assert stdout.strip() == f"{pending} approved of {pending} pending."


def test_approve_named_product_only(world):
    chosen = onboard(world.a)
    other = onboard(world.a)

    _run("acme", "approve", chosen.product_id)

    assert _status("acme", chosen.request_id) == "approved"
    assert _status("acme", other.request_id) == "pending"
    assert _tags("acme", chosen.product_id) == set()


def test_approve_conflicting_pair_reports_superseded(world):
    # Approving the first request supersedes the second, so the second approval fails.
    first = onboard(world.a)
    second = onboard(world.a, first.product_id)

    stdout, stderr = _run("acme", "approve", first.product_id)

    assert _status("acme", first.request_id) == "approved"
    assert _status("acme", second.request_id) == "superseded"
    assert f"{first.product_id}: " in stderr
    assert "not pending" in stderr
    assert stdout.strip() == "1 approved of 2 pending."


def test_reject_product(world):
    chosen = onboard(world.a)
    other = onboard(world.a)

    _run("acme", "reject", chosen.product_id)

    assert _status("acme", chosen.request_id) == "rejected"
    assert _status("acme", other.request_id) == "pending"


def test_reject_reports_count(world):
    chosen = onboard(world.a)

    stdout, _ = _run("acme", "reject", chosen.product_id)

    assert stdout.strip() == "1 rejected of 1 pending."


def test_reject_accepts_lowercase_model_number(world):
    chosen = onboard(world.a)

    _run("acme", "reject", chosen.product_id.lower())

    assert _status("acme", chosen.request_id) == "rejected"


def test_approve_without_target_fails(world):
    with pytest.raises(CommandError, match="--all-pending"):
        _run("acme", "approve")


@pytest.mark.parametrize("schema", ["nosuchtenant", "public"])
def test_unknown_schema_fails(world, schema):
    with pytest.raises(CommandError, match=schema):
        _run(schema, "list")


def test_list_flags_request_without_device_proof(world):
    from provisioning.models import Product
    from tests.factories import provision_products

    [product_id] = provision_products(world.a.msp, world.a.registration)
    Product.objects.filter(product_id=product_id).update(credential_type="secret_sha256", credential="ab" * 32)
    onboard(world.a, product_id)

    stdout, _stderr = _run("acme", "list")

    line = next(line for line in stdout.splitlines() if product_id in line)
    assert "DEVICE-CREDENTIAL-NOT-PROVEN" in line
