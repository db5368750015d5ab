"""Creating a Director tenant hosted by this deployment and registering it for ZTP lookups."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Q

from audit.services import Actor
from msp.models import MSP, TenantRegistration
from msp.services.registrations import RegistrationRejected, register_tenant

logger = logging.getLogger(__name__)


@dataclass
class HostedTenant:
    """The outcome: ``access_key`` is shown to the caller once and kept nowhere in clear."""

    tenant: object
    access_key: str
    management_url: str
    registration: TenantRegistration | None
    # Set when the tenant exists but its registration failed (a race with another request).
    registration_error: str | None = None


def create_and_register_hosted_tenant(msp: MSP, *, name: str, schema_name: str, domain: str, actor: Actor,
                                      register: bool = True, admin_username: str | None = None,
                                      admin_password: str | None = None,
                                      progress: Callable[[str], None] | None = None) -> HostedTenant:
    """Create a hosted tenant for ``msp`` and, with ``register``, register its URL and key.

    Everything that can be checked is checked before the schema exists,
    because afterwards a failure would lose the access key, which is shown
    only once. Raises ``tenants.services.TenantRejected`` or
    :class:`RegistrationRejected` for such input, with nothing created.
    """
    from tenants.services import (
        create_hosted_tenant,
        create_tenant_admin,
        discard_tenant,
        management_url_for,
        validate_new_tenant,
    )

    schema_name = schema_name.strip().lower()
    domain = domain.strip().lower()
    validate_new_tenant(schema_name, domain)
    url = management_url_for(domain)
    if register and TenantRegistration.objects.filter(Q(msp=msp, name=name.strip()) | Q(management_url=url)).exists():
        raise RegistrationRejected(
            "duplicate_registration",
            f"A tenant registration named {name!r} or at {url} already exists; pick another name or domain.",
        )

    report = progress or (lambda step: None)
    tenant, access_key = create_hosted_tenant(name=name, schema_name=schema_name, domain=domain, actor=actor,
                                              owner_msp=msp, progress=progress)
    if admin_username and admin_password:
        report("creating the tenant admin")
        try:
            create_tenant_admin(tenant, admin_username, admin_password, actor=actor)
        except BaseException:
            # The caller never saw the access key, so the tenant is of no use.
            logger.exception("Creating the admin of tenant %s failed; removing the tenant", schema_name)
            discard_tenant(tenant)
            raise

    result = HostedTenant(tenant, access_key, url, None)
    if register:
        report("registering the tenant for ZTP lookups")
        try:
            result.registration = register_tenant(msp, name=name, management_url=url, access_key=access_key,
                                                  actor=actor)
        except RegistrationRejected as error:
            logger.warning("Created tenant %s but could not register it for MSP %s: %s", schema_name, msp.slug,
                           error.detail)
            result.registration_error = error.detail
    return result


def owned_hosted_tenant(msp: MSP, schema_name: str):
    """Return the hosted tenant ``schema_name`` of ``msp``.

    Raises ``Tenant.DoesNotExist`` for a tenant of another MSP exactly as for
    a missing one, so an MSP cannot probe other MSPs' schema names.
    """
    from tenants.models import Tenant

    return Tenant.objects.get(schema_name=(schema_name or "").strip().lower(), owner_msp=msp)


def delete_owned_hosted_tenant(msp: MSP, schema_name: str, *, actor: Actor, policy: str | None = None):
    """Delete the hosted tenant ``schema_name`` of ``msp`` (see ``tenants.deletion.delete_hosted_tenant``)."""
    from tenants.deletion import delete_hosted_tenant

    return delete_hosted_tenant(owned_hosted_tenant(msp, schema_name), actor=actor, policy=policy)
