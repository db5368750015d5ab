"""Hosting Director tenants: the public tenant, new tenant schemas, tenant access keys."""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django_tenants.utils import get_public_schema_name, schema_context

from audit.services import Actor, record_event
from common import tokens
from msp.models import MSP
from tenants.models import Domain, Tenant

logger = logging.getLogger(__name__)

TENANT_KEY_PREFIX = "ztsp_tk"
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
    reserved = schema_name in ("public", "information_schema") or schema_name.startswith("pg_")
    if not SCHEMA_NAME_RE.match(schema_name) or reserved:
        raise TenantRejected(
            "invalid_schema_name",
            f"Schema name {schema_name!r} must be 1-63 lower-case letters, digits or '_', start with a letter, "
            "and not be 'public', 'information_schema' or start with 'pg_'.",
            field="schema_name",
        )
    if not DOMAIN_RE.match(domain):
        raise TenantRejected(
            "invalid_domain", f"Domain {domain!r} is not a valid host name like acme.director.example.",
            field="domain",
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


def create_hosted_tenant(*, name: str, schema_name: str, domain: str, actor: Actor, owner_msp: MSP | None = None
                         ) -> tuple[Tenant, str]:
    """Create a Director tenant: schema, domain, access key and issuing CA.

    Returns the tenant and its access key, which is shown only now. Creating
    the schema runs the tenant migrations, so this takes seconds.
    """
    from pki.services import create_issuing_ca

    schema_name = schema_name.strip().lower()
    domain = domain.strip().lower()
    validate_new_tenant(schema_name, domain)

    new_key = tokens.make_key(TENANT_KEY_PREFIX)
    # Schema creation commits on its own (DDL plus migrations). If a later
    # step fails, the tenant row is removed again so the name can be reused.
    tenant = Tenant(
        schema_name=schema_name, name=name.strip(), owner_msp=owner_msp,
        access_key_id=new_key.key_id, access_key_hash=new_key.key_hash,
    )
    tenant.save(verbosity=0)
    try:
        with transaction.atomic():
            Domain.objects.create(domain=domain, tenant=tenant, is_primary=True)
            with schema_context(schema_name):
                create_issuing_ca(tenant)
            record_event("tenant.create", actor=actor, object_type="tenant", object_id=schema_name,
                         msp_id=owner_msp.pk if owner_msp else None, details={"domain": domain, "name": name})
    except Exception:
        logger.exception("Creating tenant %s failed after its schema was made; removing it", schema_name)
        tenant.auto_drop_schema = True
        tenant.delete(force_drop=True)
        raise
    logger.info("Created tenant %s at %s", schema_name, domain)
    return tenant, new_key.plaintext


@transaction.atomic
def rotate_tenant_access_key(tenant: Tenant, *, actor: Actor) -> str:
    """Give ``tenant`` a new access key and return it; the old key stops working at once."""
    new_key = tokens.make_key(TENANT_KEY_PREFIX)
    Tenant.objects.filter(pk=tenant.pk).update(access_key_id=new_key.key_id, access_key_hash=new_key.key_hash)
    record_event("tenant.rotate_key", actor=actor, object_type="tenant", object_id=tenant.schema_name)
    return new_key.plaintext


def tenant_access_key_matches(tenant: Tenant, presented: str | None) -> bool:
    """Check a tenant access key in constant time; another tenant's key never matches."""
    if not presented or not tenant.access_key_hash:
        return False
    key_id = tokens.split_key(TENANT_KEY_PREFIX, presented)
    if key_id is None or key_id != tenant.access_key_id:
        return False
    return tokens.key_matches(presented, tenant.access_key_hash)


def create_tenant_admin(tenant: Tenant, username: str, password: str, *, actor: Actor, email: str = ""):
    """Create an admin user inside the tenant's schema (tenant users live only there)."""
    with schema_context(tenant.schema_name), transaction.atomic():
        user = get_user_model().objects.create_user(
            username=username, password=password, email=email, is_staff=True
        )
        record_event("tenant.user.create", actor=actor, object_type="user", object_id=username)
    return user
