from django.conf import settings
from django.core.management.base import BaseCommand

from pki.services import ensure_root_ca
from tenants.services import ensure_public_tenant
from tenants.template import ensure_tenant_template, template_schema_name


class Command(BaseCommand):
    help = (
        "Create the public tenant, its Provision Server host names, the root CA and the tenant template "
        "schema if missing, and rebuild the template if its migrations are out of date (idempotent)."
    )

    def handle(self, *args, **options):
        public = ensure_public_tenant()
        root = ensure_root_ca()
        hosts = ", ".join(public.domains.values_list("domain", flat=True))
        summary = f"Public host names: {hosts}. Root CA key id {root.key_id[:16]}."
        if settings.DIRECTOR_ROLE:
            built = ensure_tenant_template()
            summary += f" Tenant template schema {template_schema_name()} {'built' if built else 'up to date'}."
        self.stdout.write(summary)
