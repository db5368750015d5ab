"""Hosting Director tenants: the public tenant, new tenant schemas, tenant access keys."""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from audit.services import Actor, record_event
from common import tokens
from msp.models import MSP
from tenants.models import Domain, Tenant
from tenants.template import (
    clone_template,
    ensure_tenant_template,
    is_fully_migrated,
    migrate_new_schema,
    template_schema_name,
)

logger = logging.getLogger(__name__)

TENANT_KEY_PREFIX = "ztsp_tk"
# Schemas of deleted tenants kept by the archive policy start with this.
ARCHIVE_PREFIX = "archived_"
# PostgreSQL identifiers are at most 63 bytes; "pg_" is reserved.
SCHEMA_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


class TenantRejected(ValueError):
    def __init__(self, code: str, detail: str, *, field: str | None = None):
        self.code = code
        self.detail = detail
        self.field = field
        super().__init__(detail)


def ensure_public_tenant() -> Tenant:
    """Create the public tenant and its Provision Server host names if missing (idempotent)."""
    public, _ = Tenant.objects.get_or_create(
        schema_name=get_public_schema_name(), defaults={"name": "Provision Server"}
    )
    for index, host in enumerate(settings.ZTSP_PUBLIC_HOSTS):
        Domain.objects.get_or_create(domain=host.lower(), defaults={"tenant": public, "is_primary": index == 0})
    return public


def management_url_for(domain: str) -> str:
    """Return the management URL (``director_url``) under which ``domain`` is served here."""
    scheme = settings.ZTSP_DIRECTOR_SCHEME
    port = settings.ZTSP_DIRECTOR_PORT
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{domain}" if port == default else f"{scheme}://{domain}:{port}"


def validate_new_tenant(schema_name: str, domain: str) -> None:
    """Raise :class:`TenantRejected` unless a tenant with this schema name and domain can be created."""
    reserved = (schema_name in ("public", "information_schema")
                or schema_name.startswith(("pg_", ARCHIVE_PREFIX, template_schema_name())))
    if not SCHEMA_NAME_RE.match(schema_name) or reserved:
        raise TenantRejected(
            "invalid_schema_name",
            f"Schema name {schema_name!r} must be 1-63 lower-case letters, digits or '_', start with a letter, "
            f"and not be 'public' or 'information_schema' or start with 'pg_', {ARCHIVE_PREFIX!r} or "
            f"{template_schema_name()!r}.",
            field="schema_name",
        )
    if not DOMAIN_RE.match(domain):
        raise TenantRejected(
            "invalid_domain", f"Domain {domain!r} is not a valid host name like acme.director.example.",
            field="domain",
        )
    if domain.startswith("www."):
        # django-tenants serves www.X as X, so such a tenant could never be
        # reached and its URL would lead to the tenant of X.
        raise TenantRejected(
            "invalid_domain", f"Domain {domain!r} starts with 'www.', which is served as {domain[4:]!r}; "
            f"use {domain[4:]!r} or another name.", field="domain",
        )
    with connection.cursor() as cursor:
        # A schema PostgreSQL already has (information_schema, or one made by
        # hand) is never adopted: the clean-up on failure would drop it.
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema_name])
        exists_in_database = cursor.fetchone() is not None
    if exists_in_database or Tenant.objects.filter(schema_name=schema_name).exists():
        raise TenantRejected("duplicate_schema_name", f"Schema {schema_name!r} already exists; pick another name.",
                             field="schema_name")
    if Domain.objects.filter(domain=domain).exists():
        raise TenantRejected("duplicate_domain", f"Domain {domain!r} is already served by another tenant.",
                             field="domain")


def create_hosted_tenant(*, name: str, schema_name: str, domain: str, actor: Actor, owner_msp: MSP | None = None,
                         method: str | None = None, progress: Callable[[str], None] | None = None
                         ) -> tuple[Tenant, str]:
    """Create a Director tenant: schema, domain, access key and issuing CA.

    Returns the tenant and its access key, which is shown only now. The
    schema is cloned from the template schema (``method="clone"``) or made by
    running every migration (``"migrate"``); the default is
    ``ZTSP_TENANT_CREATE_METHOD``. The issuing CA and the other rows of the
    tenant are made after the schema exists and never copied from the
    template, so each tenant has its own.

    If any step fails, the tenant row, its domain and its schema are removed
    again before the error is raised. ``progress`` is called with the name of
    each step as it starts, outside any transaction of this function.
    """
    report = progress or (lambda step: None)
    schema_name = schema_name.strip().lower()
    domain = domain.strip().lower()
    method = method or settings.ZTSP_TENANT_CREATE_METHOD
    if method not in ("clone", "migrate"):
        raise ValueError(f"method must be 'clone' or 'migrate', not {method!r}")
    validate_new_tenant(schema_name, domain)

    new_key = tokens.make_key(TENANT_KEY_PREFIX)
    tenant = Tenant(
        schema_name=schema_name, name=name.strip(), owner_msp=owner_msp,
        access_key_id=new_key.key_id, access_key_hash=new_key.key_hash,
    )
    # The schema is made below rather than by Tenant.save().
    tenant.auto_create_schema = False
    started = time.monotonic()
    if method == "clone":
        if not is_fully_migrated(template_schema_name()):
            report("building the template schema")
            ensure_tenant_template()
        report("cloning the schema and creating the issuing CA")
        # PostgreSQL DDL is transactional, so a failure at any step leaves
        # neither the row nor the schema behind.
        with transaction.atomic():
            tenant.save(verbosity=0)
            clone_template(schema_name)
            _add_tenant_rows(tenant, domain, actor=actor, method=method)
    else:
        # Migrations commit one by one, so the schema exists before the rest
        # and is removed by hand if a later step fails.
        report("running the migrations and creating the issuing CA")
        tenant.save(verbosity=0)
        try:
            migrate_new_schema(schema_name)
            with transaction.atomic():
                _add_tenant_rows(tenant, domain, actor=actor, method=method)
        except BaseException:
            logger.exception("Creating tenant %s failed; removing its row and schema", schema_name)
            discard_tenant(tenant)
            raise
    logger.info("Created tenant %s at %s by %s in %.2f s", schema_name, domain, method, time.monotonic() - started)
    return tenant, new_key.plaintext


def _add_tenant_rows(tenant: Tenant, domain: str, *, actor: Actor, method: str) -> None:
    from pki.services import create_issuing_ca

    Domain.objects.create(domain=domain, tenant=tenant, is_primary=True)
    with schema_context(tenant.schema_name):
        create_issuing_ca(tenant)
    record_event("tenant.create", actor=actor, object_type="tenant", object_id=tenant.schema_name,
                 msp_id=tenant.owner_msp_id, details={"domain": domain, "name": tenant.name, "method": method})


def discard_tenant(tenant: Tenant) -> None:
    """Remove a tenant that failed half-way through creation: its schema, domains and row.

    Each part is removed if present, so this also cleans up after a failure
    before the schema or domain existed.
    """
    connection.set_schema_to_public()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {connection.ops.quote_name(tenant.schema_name)} CASCADE")
        Domain.objects.filter(tenant__schema_name=tenant.schema_name).delete()
        Tenant.objects.filter(schema_name=tenant.schema_name).delete()


@transaction.atomic
def rotate_tenant_access_key(tenant: Tenant, *, actor: Actor, grace_seconds: int | None = None) -> str:
    """Give ``tenant`` a new access key and return it; the new key is shown only now.

    The replaced key keeps working for ``grace_seconds`` (default
    ``ZTSP_TENANT_KEY_GRACE_SECONDS``), so ECs that looked up the old key
    shortly before can still onboard. With 0 it stops at once, e.g. after a
    leak. A key that an earlier rotation left in its grace period stops at
    once, because only one previous key is kept.
    """
    if grace_seconds is None:
        grace_seconds = settings.ZTSP_TENANT_KEY_GRACE_SECONDS
    if grace_seconds < 0:
        raise ValueError(f"grace_seconds must be 0 or more, not {grace_seconds}")

    # The row lock makes concurrent rotations take turns, so neither loses
    # the key that the other one moves into the grace period.
    current = Tenant.objects.select_for_update().get(pk=tenant.pk)
    new_key = tokens.make_key(TENANT_KEY_PREFIX)
    keeps_previous = grace_seconds > 0 and bool(current.access_key_hash)
    changes = {
        "access_key_id": new_key.key_id,
        "access_key_hash": new_key.key_hash,
        "previous_access_key_id": current.access_key_id if keeps_previous else "",
        "previous_access_key_hash": current.access_key_hash if keeps_previous else "",
        "previous_key_valid_until": timezone.now() + timedelta(seconds=grace_seconds) if keeps_previous else None,
    }
    Tenant.objects.filter(pk=tenant.pk).update(**changes)
    for name, value in changes.items():
        setattr(tenant, name, value)

    valid_until = changes["previous_key_valid_until"]
    record_event("tenant.rotate_key", actor=actor, object_type="tenant", object_id=tenant.schema_name,
                 msp_id=tenant.owner_msp_id,
                 details={"key_id": new_key.key_id, "previous_key_id": changes["previous_access_key_id"],
                          "previous_key_valid_until": valid_until.isoformat() if valid_until else None})
    logger.info("Rotated the access key of tenant %s to key id %s; previous key id %s valid until %s",
                tenant.schema_name, new_key.key_id, changes["previous_access_key_id"] or "-", valid_until or "-")
    return new_key.plaintext


def tenant_access_key_matches(tenant: Tenant, presented: str | None) -> bool:
    """Check a tenant access key in constant time; another tenant's key never matches.

    The current key always matches. The key replaced by the last rotation
    matches until ``previous_key_valid_until``.
    """
    if not presented or not tenant.access_key_hash:
        return False
    if tokens.split_key(TENANT_KEY_PREFIX, presented) is None:
        return False
    # Both hashes are compared on every call, so the time taken does not show
    # which of the two keys matched.
    presented_hash = tokens.hash_secret(presented)
    matches_current = hmac.compare_digest(presented_hash, tenant.access_key_hash)
    matches_previous = hmac.compare_digest(presented_hash, tenant.previous_access_key_hash or "")
    in_grace = tenant.previous_key_valid_until is not None and timezone.now() < tenant.previous_key_valid_until
    return matches_current or (matches_previous and in_grace)


def create_tenant_admin(tenant: Tenant, username: str, password: str, *, actor: Actor, email: str = ""):
    """Create an admin user inside the tenant's schema (tenant users live only there)."""
    with schema_context(tenant.schema_name), transaction.atomic():
        user = get_user_model().objects.create_user(
            username=username, password=password, email=email, is_staff=True
        )
        record_event("tenant.user.create", actor=actor, object_type="user", object_id=username)
    return user
