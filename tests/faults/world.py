"""Commands that a fault test runs on its private database, each in a process of its own.

``python -m tests.faults.world seed COUNT`` migrates the database, seeds one
tenant with COUNT mapped products and prints what the ECs need as JSON on its
last line. ``python -m tests.faults.world approve-all`` approves every pending
request of that tenant in one transaction, as a bulk approval in the portal
does, so their certificates are issued by one batch task. Run both with
``DATABASE_URL`` and ``REDIS_URL`` pointing at the private servers.
"""

from __future__ import annotations

import json
import os
import sys

SCHEMA = "acme"


def seed(count: int) -> dict:
    from django.core.management import call_command

    from msp.services.accounts import create_msp
    from msp.services.registrations import register_tenant
    from provisioning.services.access_keys import create_access_key
    from tenants.services import create_hosted_tenant, create_tenant_admin, management_url_for
    from tests.conftest import ADMIN_PASSWORD
    from tests.factories import VENDOR, provision_products

    call_command("migrate_schemas", interactive=False, verbosity=0)
    call_command("bootstrap_deployment", verbosity=0)

    msp = create_msp("Faults MSP", slug="faults", actor=VENDOR)
    domain = "acme.localhost"
    tenant, tenant_key = create_hosted_tenant(name="Acme", schema_name=SCHEMA, domain=domain, actor=VENDOR,
                                              owner_msp=msp)
    create_tenant_admin(tenant, "acme-admin", ADMIN_PASSWORD, actor=VENDOR)
    registration = register_tenant(msp, name="Acme", management_url=management_url_for(domain),
                                   access_key=tenant_key, actor=VENDOR)
    _key, provisioning_key = create_access_key("fault tests", actor=VENDOR)
    product_ids = provision_products(msp, registration, count)
    return {
        "provisioning_key": provisioning_key,
        "schema": SCHEMA,
        "tenant_access_key": tenant_key,
        "domain": domain,
        "admin": "acme-admin",
        "password": ADMIN_PASSWORD,
        "product_ids": product_ids,
    }


def approve_all() -> dict:
    from django_tenants.utils import schema_context

    from audit.services import Actor
    from onboarding.models import OnboardRequest
    from onboarding.services_portal import approve_onboard_requests

    with schema_context(SCHEMA):
        pending = list(OnboardRequest.objects.filter(status=OnboardRequest.Status.PENDING).values_list("pk", flat=True))
        approved = approve_onboard_requests(pending, actor=Actor.system("fault-tests"), tags=["faults"])
    return {"approved": len(approved)}


if __name__ == "__main__":
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    result = seed(int(sys.argv[2])) if sys.argv[1] == "seed" else approve_all()
    print(json.dumps(result))
