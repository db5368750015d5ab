from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from common.commands import cli_actor
from msp.services.registrations import registrations_at
from tenants.deletion import delete_hosted_tenant
from tenants.models import Domain, Tenant
from tenants.services import management_url_for


class Command(BaseCommand):
    help = (
        "Delete a Director tenant hosted here: its row, domains and schema, and every tenant registration at "
        "its URL (its products are unmapped, so their ZTP lookups return 409 not_mapped)."
    )

    def add_arguments(self, parser):
        parser.add_argument("schema_name", help="Schema name of the tenant, e.g. acme")
        parser.add_argument("--policy", choices=["drop", "archive"],
                            help="drop the schema, or archive it as archived_<schema>_<timestamp> "
                                 "(default: ZTSP_TENANT_DELETE_POLICY)")
        parser.add_argument("--dry-run", action="store_true", help="Show what would be deleted; change nothing")

    def handle(self, *args, schema_name, policy, dry_run, **options):
        connection.set_schema_to_public()
        tenant = Tenant.objects.exclude(schema_name="public").filter(schema_name=schema_name.lower()).first()
        if tenant is None:
            raise CommandError(f"No hosted tenant with schema name {schema_name!r}.")
        if dry_run:
            urls = [management_url_for(domain) for domain in
                    Domain.objects.filter(tenant=tenant).values_list("domain", flat=True)]
            registrations = registrations_at(urls) if urls else []
            self.stdout.write(f"Would delete tenant {tenant.schema_name} ({', '.join(urls) or 'no domain'}) and "
                              f"{len(registrations)} tenant registrations; nothing changed.")
            return
        deleted = delete_hosted_tenant(tenant, actor=cli_actor(), policy=policy)
        outcome = f"archived as schema {deleted.archived_schema}" if deleted.archived_schema else "schema dropped"
        self.stdout.write(f"Deleted tenant {deleted.schema_name} ({outcome}); deleted {deleted.registrations_deleted} "
                          f"tenant registrations and unmapped {deleted.products_unmapped} products.")
