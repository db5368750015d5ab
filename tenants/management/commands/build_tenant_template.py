from django.core.management.base import BaseCommand

from tenants.template import ensure_tenant_template, template_schema_name


class Command(BaseCommand):
    help = (
        "Build the template schema that new tenants are cloned from, if it is missing or its applied "
        "migrations differ from the code's (idempotent). Run it after migrate_schemas."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rebuild", action="store_true", help="Build it even if it is up to date")

    def handle(self, *args, rebuild, **options):
        built = ensure_tenant_template(rebuild=rebuild)
        state = "built" if built else "already up to date"
        self.stdout.write(f"Tenant template schema {template_schema_name()}: {state}.")
