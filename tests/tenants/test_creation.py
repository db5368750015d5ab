"""Creating hosted tenants by cloning the template schema, and cleaning up when creation fails."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

import pki.services
from msp.models import TenantRegistration
from msp.services.hosted_tenants import create_and_register_hosted_tenant
from pki.models import IssuingCA
from tenants.models import Domain, Tenant
from tenants.services import TenantRejected, create_hosted_tenant, management_url_for
from tenants.template import applied_migrations, ensure_tenant_template, is_fully_migrated, template_schema_name
from tests.factories import VENDOR
from tests.tenants.conftest import schema_exists, unique_names


class InjectedFailure(RuntimeError):
    pass


def catalog(schema_name: str) -> dict[str, set]:
    """Describe the tables, columns, constraints, indexes and sequences of a schema, without its name."""
    queries = {
        "tables": "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
        "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity "
                   "FROM information_schema.columns WHERE table_schema = %s",
        "constraints": "SELECT cl.relname, co.conname, pg_get_constraintdef(co.oid) FROM pg_constraint co "
                       "JOIN pg_class cl ON cl.oid = co.conrelid JOIN pg_namespace n ON n.oid = cl.relnamespace "
                       "WHERE n.nspname = %s",
        "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = %s",
        "sequences": "SELECT sequence_name, data_type FROM information_schema.sequences WHERE sequence_schema = %s",
    }
    described = {}
    with connection.cursor() as cursor:
        for kind, sql in queries.items():
            cursor.execute(sql, [schema_name])
            described[kind] = {
                tuple(str(value).replace(schema_name, "<schema>") if value is not None else None for value in row)
                for row in cursor.fetchall()
            }
    return described


def rows_of(schema_name: str, sql: str) -> set[tuple]:
    with schema_context(schema_name), connection.cursor() as cursor:
        cursor.execute(sql)
        return set(cursor.fetchall())


def test_cloned_tenant_matches_migrated_tenant(world):
    cloned_schema, cloned_domain = unique_names("clone")
    migrated_schema, migrated_domain = unique_names("migrate")

    create_hosted_tenant(name="Cloned", schema_name=cloned_schema, domain=cloned_domain, actor=VENDOR,
                         method="clone")
    create_hosted_tenant(name="Migrated", schema_name=migrated_schema, domain=migrated_domain, actor=VENDOR,
                         method="migrate")

    cloned, migrated = catalog(cloned_schema), catalog(migrated_schema)
    assert cloned["tables"]
    for kind in migrated:
        assert cloned[kind] == migrated[kind], kind
    assert applied_migrations(cloned_schema) == applied_migrations(migrated_schema)
    assert is_fully_migrated(cloned_schema)
    content_types = "SELECT app_label, model FROM django_content_type"
    assert rows_of(cloned_schema, content_types) == rows_of(migrated_schema, content_types)


def test_cloned_tenant_gets_its_own_issuing_ca(world):
    first_schema, first_domain = unique_names()
    second_schema, second_domain = unique_names()

    create_hosted_tenant(name="First", schema_name=first_schema, domain=first_domain, actor=VENDOR)
    create_hosted_tenant(name="Second", schema_name=second_schema, domain=second_domain, actor=VENDOR)

    with schema_context(first_schema):
        first_keys = set(IssuingCA.objects.values_list("key_id", flat=True))
    with schema_context(second_schema):
        second_keys = set(IssuingCA.objects.values_list("key_id", flat=True))
    assert len(first_keys) == 1
    assert len(second_keys) == 1
    assert first_keys != second_keys
    # The template itself contains no tenant rows to be copied.
    with schema_context(template_schema_name()):
        assert not IssuingCA.objects.exists()


def test_template_rebuilt_when_migrations_differ(world):
    ensure_tenant_template()
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {template_schema_name()}.django_migrations WHERE app = 'pki'")  # noqa: S608
    assert not is_fully_migrated(template_schema_name())

    assert ensure_tenant_template() is True

    assert is_fully_migrated(template_schema_name())
    assert ensure_tenant_template() is False


@pytest.mark.parametrize("method", ["clone", "migrate"])
def test_failed_creation_leaves_nothing(world, monkeypatch, method):
    schema_name, domain = unique_names()
    seen_schema = []

    def failing_issuing_ca(tenant):
        # The failure comes after the schema and the domain exist.
        seen_schema.append(schema_exists(tenant.schema_name))
        raise InjectedFailure("issuing CA creation failed")

    monkeypatch.setattr(pki.services, "create_issuing_ca", failing_issuing_ca)

    with pytest.raises(InjectedFailure):
        create_and_register_hosted_tenant(world.a.msp, name="Doomed", schema_name=schema_name, domain=domain,
                                          actor=VENDOR)

    assert seen_schema == [True]
    assert not Tenant.objects.filter(schema_name=schema_name).exists()
    assert not schema_exists(schema_name)
    assert not Domain.objects.filter(domain=domain).exists()
    assert not TenantRegistration.objects.filter(management_url=management_url_for(domain)).exists()


def test_failed_admin_creation_leaves_nothing(world, monkeypatch):
    schema_name, domain = unique_names()

    def failing_admin(*args, **kwargs):
        raise InjectedFailure("admin creation failed")

    monkeypatch.setattr("tenants.services.create_tenant_admin", failing_admin)

    with pytest.raises(InjectedFailure):
        create_and_register_hosted_tenant(world.a.msp, name="Doomed", schema_name=schema_name, domain=domain,
                                          actor=VENDOR, admin_username="ops", admin_password="a-long-password-1")

    assert not Tenant.objects.filter(schema_name=schema_name).exists()
    assert not schema_exists(schema_name)
    assert not Domain.objects.filter(domain=domain).exists()
    assert not TenantRegistration.objects.filter(management_url=management_url_for(domain)).exists()


@pytest.mark.parametrize("schema_name", ["tenant_template", "archived_acme_20260101000000"])
def test_create_rejects_reserved_schema(world, schema_name):
    with pytest.raises(TenantRejected) as raised:
        create_hosted_tenant(name="Reserved", schema_name=schema_name, domain=unique_names()[1], actor=VENDOR)

    assert raised.value.code == "invalid_schema_name"
    assert not Tenant.objects.filter(schema_name=schema_name).exists()


def test_build_template_command_reports_state(world, capsys):
    call_command("build_tenant_template")
    first = capsys.readouterr().out
    call_command("build_tenant_template")
    second = capsys.readouterr().out

    assert f"Tenant template schema {template_schema_name()}" in first
    assert "already up to date" in second
