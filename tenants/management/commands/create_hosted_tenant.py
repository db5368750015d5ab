import os

from django.core.management.base import BaseCommand, CommandError

from common.commands import cli_actor
from msp.models import MSP
from msp.services.registrations import register_tenant
from tenants.services import TenantRejected, create_hosted_tenant, create_tenant_admin, management_url_for


class Command(BaseCommand):
    help = (
        "Create a Director tenant hosted here (schema, domain, access key, issuing CA). The access key is "
        "printed once. With --register, it is also registered for the owner MSP's ZTP lookups."
    )

    def add_arguments(self, parser):
        parser.add_argument("schema_name", help="PostgreSQL schema name, e.g. acme")
        parser.add_argument("domain", help="Host name that serves the tenant, e.g. acme.localhost")
        parser.add_argument("--name", help="Display name (default: the schema name)")
        parser.add_argument("--msp", help="Slug of the owner MSP")
        parser.add_argument("--register", action="store_true", help="Register URL + key for the owner MSP")
        parser.add_argument("--method", choices=["clone", "migrate"],
                            help="clone the template schema, or run every migration "
                                 "(default: ZTSP_TENANT_CREATE_METHOD)")
        parser.add_argument("--admin", help="Create a tenant admin with this user name "
                                            "(password from ZTSP_TENANT_ADMIN_PASSWORD)")

    def handle(self, *args, schema_name, domain, name, msp, register, admin, method, **options):
        owner = None
        if msp:
            owner = MSP.objects.filter(slug=msp).first()
            if owner is None:
                raise CommandError(f"No MSP with slug {msp!r}.")
        if register and owner is None:
            raise CommandError("--register needs --msp: the registration belongs to an MSP.")
        actor = cli_actor()
        try:
            tenant, access_key = create_hosted_tenant(name=name or schema_name, schema_name=schema_name,
                                                      domain=domain, actor=actor, owner_msp=owner, method=method)
        except TenantRejected as error:
            raise CommandError(error.detail) from error
        url = management_url_for(domain.lower())
        self.stderr.write(f"Created tenant {tenant.schema_name} at {url}.")
        if admin:
            password = os.environ.get("ZTSP_TENANT_ADMIN_PASSWORD")
            if not password:
                raise CommandError("Set ZTSP_TENANT_ADMIN_PASSWORD to create the tenant admin.")
            create_tenant_admin(tenant, admin, password, actor=actor)
            self.stderr.write(f"Created tenant admin {admin}.")
        if register:
            register_tenant(owner, name=tenant.name, management_url=url, access_key=access_key, actor=actor)
            self.stderr.write(f"Registered {url} for MSP {owner.slug}.")
        self.stderr.write("Tenant access key; store it now, it is not shown again:")
        self.stdout.write(access_key)
