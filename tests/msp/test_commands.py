"""Management commands for MSPs: create_msp, allocate_products, claim_products, register_tenant, map_products."""

from __future__ import annotations

import io
import secrets
import uuid

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from common import tokens
from msp.models import MSP, TenantRegistration
from msp.services.accounts import authenticate_api_token
from msp.services.products import NOT_YOURS
from provisioning.models import Product
from tests.conftest import ADMIN_PASSWORD
from tests.msp.conftest import allocated_products, audit_events, claimed_products, imported_products


def run(*args, **options) -> tuple[str, str]:
    """Run a management command; return its standard output and standard error."""
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command(*args, stdout=stdout, stderr=stderr, **options)
    return stdout.getvalue(), stderr.getvalue()


def write_lines(tmp_path, lines: list[str], name: str = "products.csv") -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def new_access_key() -> str:
    return f"ztsp_tk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


def unique_url() -> str:
    return f"https://t-{uuid.uuid4().hex[:12]}.director.example"


# create_msp


def test_create_msp_prints_token(world):
    stdout, stderr = run("create_msp", "Cmd Networks", "--slug", "cmd-networks")

    msp = MSP.objects.get(slug="cmd-networks")
    token = authenticate_api_token(stdout.strip())
    assert token.msp_id == msp.pk
    assert stdout.strip().count("\n") == 0
    assert "cmd-networks" in stderr


def test_create_msp_audited_with_cli_actor(world):
    run("create_msp", "Cli Audit MSP", "--slug", "cli-audit")

    event = audit_events("msp.create", "cli-audit").get()
    assert event.actor_type == "system"
    assert event.actor.startswith("cli:")
    assert event.source_address is None
    assert audit_events("msp.token.create").filter(msp_id=event.msp_id).exists()


def test_create_msp_without_token(world):
    stdout, _stderr = run("create_msp", "Tokenless MSP", "--slug", "tokenless", "--no-token")

    assert stdout == ""
    assert not MSP.objects.get(slug="tokenless").api_tokens.exists()


def test_create_msp_with_user(world, monkeypatch):
    monkeypatch.setenv("ZTSP_MSP_USER_PASSWORD", ADMIN_PASSWORD)

    run("create_msp", "Staffed MSP", "--slug", "staffed", "--username", "staffed-admin")

    user = authenticate(username="staffed-admin", password=ADMIN_PASSWORD)
    assert user is not None
    assert user.msp_membership.msp.slug == "staffed"


def test_create_msp_duplicate_raises(world):
    with pytest.raises(CommandError, match="already exists"):
        run("create_msp", world.a.msp.name, "--slug", "another-slug")


# allocate_products


def test_allocate_command_prints_rejects_and_summary(world, tmp_path):
    free = imported_products(2)
    [taken] = allocated_products(world.b.msp)
    path = write_lines(tmp_path, [free[0], "not-an-id", taken, free[1]])

    stdout, _stderr = run("allocate_products", world.a.msp.slug, path)

    assert "line 2: 'not-an-id' rejected:" in stdout
    assert f"line 3: '{taken}' rejected: already allocated to another MSP" in stdout
    assert stdout.strip().endswith("2 allocated, 0 unchanged, 2 rejected.")
    assert Product.objects.filter(product_id__in=free, msp=world.a.msp).count() == 2


def test_allocate_command_audited(world, tmp_path):
    [free] = imported_products()

    run("allocate_products", world.a.msp.slug, write_lines(tmp_path, [free]))

    event = audit_events("product.allocate", free).get()
    assert event.msp_id == world.a.msp.pk
    assert event.actor.startswith("cli:")


def test_allocate_command_unknown_msp(world, tmp_path):
    with pytest.raises(CommandError, match="No MSP with slug 'nobody'"):
        run("allocate_products", "nobody", write_lines(tmp_path, imported_products()))


def test_allocate_command_missing_file(world, tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        run("allocate_products", world.a.msp.slug, str(tmp_path / "absent.csv"))


# claim_products


def test_claim_command_prints_rejects_and_summary(world, tmp_path):
    own = allocated_products(world.a.msp, 2)
    [other] = allocated_products(world.b.msp)
    path = write_lines(tmp_path, ["product_id", own[0], other, own[0], own[1]])

    stdout, _stderr = run("claim_products", world.a.msp.slug, path)

    assert f"line 3: '{other}' rejected: {NOT_YOURS}" in stdout
    assert f"line 4: '{own[0]}' rejected: duplicate of position 2" in stdout
    assert stdout.strip().endswith("2 claimed, 0 unchanged, 2 rejected.")
    assert Product.objects.get(product_id=other).claimed_at is None


def test_claim_command_reports_unchanged(world, tmp_path):
    own = claimed_products(world.a.msp, 2)

    stdout, _stderr = run("claim_products", world.a.msp.slug, write_lines(tmp_path, own))

    assert stdout.strip() == "0 claimed, 2 unchanged, 0 rejected."


def test_claim_command_audited(world, tmp_path):
    [own] = allocated_products(world.a.msp)

    run("claim_products", world.a.msp.slug, write_lines(tmp_path, [own]))

    event = audit_events("product.claim", own).get()
    assert event.msp_id == world.a.msp.pk
    assert event.actor.startswith("cli:")


# register_tenant


def test_register_command_reads_key_file(world, tmp_path):
    key = new_access_key()
    key_file = tmp_path / "key.txt"
    key_file.write_text(key + "\n")
    url = unique_url()

    stdout, _stderr = run("register_tenant", world.a.msp.slug, "From File", url, "--access-key-file", str(key_file))

    registration = TenantRegistration.objects.get(management_url=url)
    assert registration.msp_id == world.a.msp.pk
    assert tokens.decrypt(registration.access_key_encrypted).decode() == key
    assert f"registration id {registration.pk}" in stdout
    assert key not in stdout


def test_register_command_reads_key_env(world, monkeypatch):
    key = new_access_key()
    monkeypatch.setenv("ZTSP_TENANT_ACCESS_KEY", key)
    url = unique_url()

    run("register_tenant", world.a.msp.slug, "From Env", url.upper() + ":443/")

    registration = TenantRegistration.objects.get(management_url=url)
    assert tokens.decrypt(registration.access_key_encrypted).decode() == key


def test_register_command_missing_key(world, monkeypatch):
    monkeypatch.delenv("ZTSP_TENANT_ACCESS_KEY", raising=False)
    url = unique_url()

    with pytest.raises(CommandError, match="Missing tenant access key"):
        run("register_tenant", world.a.msp.slug, "No Key", url)

    assert not TenantRegistration.objects.filter(management_url=url).exists()


def test_register_command_empty_key_file(world, tmp_path, monkeypatch):
    monkeypatch.setenv("ZTSP_TENANT_ACCESS_KEY", new_access_key())
    key_file = tmp_path / "empty.txt"
    key_file.write_text("\n")

    # An explicit but empty file must not fall back to the environment.
    with pytest.raises(CommandError, match="Missing tenant access key"):
        run("register_tenant", world.a.msp.slug, "Empty File", unique_url(), "--access-key-file", str(key_file))


def test_register_command_unreadable_key_file(world, tmp_path):
    with pytest.raises(CommandError, match="Cannot read tenant access key"):
        run("register_tenant", world.a.msp.slug, "Gone", unique_url(),
            "--access-key-file", str(tmp_path / "absent.txt"))


def test_register_command_short_key(world, monkeypatch):
    monkeypatch.setenv("ZTSP_TENANT_ACCESS_KEY", "short")

    with pytest.raises(CommandError, match="at least 20 characters"):
        run("register_tenant", world.a.msp.slug, "Short", unique_url())


def test_register_command_invalid_url(world, monkeypatch):
    monkeypatch.setenv("ZTSP_TENANT_ACCESS_KEY", new_access_key())

    with pytest.raises(CommandError, match="path, query or fragment"):
        run("register_tenant", world.a.msp.slug, "Pathy", unique_url() + "/tenant")


def test_register_command_duplicate_url(world, monkeypatch):
    monkeypatch.setenv("ZTSP_TENANT_ACCESS_KEY", new_access_key())

    with pytest.raises(CommandError, match="cannot be registered"):
        run("register_tenant", world.b.msp.slug, "Stolen", world.a.registration.management_url)


def test_register_command_audited(world, monkeypatch):
    monkeypatch.setenv("ZTSP_TENANT_ACCESS_KEY", new_access_key())
    url = unique_url()

    run("register_tenant", world.a.msp.slug, "Audited", url)

    registration = TenantRegistration.objects.get(management_url=url)
    event = audit_events("tenant_registration.create", str(registration.pk)).get()
    assert event.msp_id == world.a.msp.pk
    assert event.actor.startswith("cli:")


# map_products


def test_map_command_prints_rejects_and_summary(world, tmp_path):
    own = claimed_products(world.a.msp, 2)
    [unclaimed] = allocated_products(world.a.msp)
    [other] = claimed_products(world.b.msp)
    path = write_lines(tmp_path, [own[0], unclaimed, other, own[1]])
    # The URL is normalised before the registration is looked up.
    url = world.a.registration.management_url.upper() + "/"

    stdout, _stderr = run("map_products", world.a.msp.slug, url, path)

    assert f"line 2: '{unclaimed}' rejected: not claimed yet; claim it first" in stdout
    assert f"line 3: '{other}' rejected: {NOT_YOURS}" in stdout
    assert stdout.strip().endswith("2 mapped, 0 unchanged, 2 rejected.")
    assert Product.objects.filter(product_id__in=own, tenant_registration=world.a.registration).count() == 2


def test_map_command_other_msp_registration(world, tmp_path):
    [own] = claimed_products(world.a.msp)

    with pytest.raises(CommandError, match="no tenant registered"):
        run("map_products", world.a.msp.slug, world.b.registration.management_url, write_lines(tmp_path, [own]))

    assert Product.objects.get(product_id=own).tenant_registration_id is None


def test_map_command_invalid_url(world, tmp_path):
    with pytest.raises(CommandError, match="not a valid"):
        run("map_products", world.a.msp.slug, "not a url", write_lines(tmp_path, claimed_products(world.a.msp)))


def test_map_command_audited(world, tmp_path):
    [own] = claimed_products(world.a.msp)

    run("map_products", world.a.msp.slug, world.a.registration.management_url, write_lines(tmp_path, [own]))

    event = audit_events("product.map", own).get()
    assert event.msp_id == world.a.msp.pk
    assert event.details["tenant_registration"] == world.a.registration.pk
