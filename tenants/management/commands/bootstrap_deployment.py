from django.core.management.base import BaseCommand

from pki.services import ensure_root_ca
from tenants.services import ensure_public_tenant


class Command(BaseCommand):
    help = "Create the public tenant, its Provision Server host names and the root CA if missing (idempotent)."

    def handle(self, *args, **options):
        public = ensure_public_tenant()
        root = ensure_root_ca()
        hosts = ", ".join(public.domains.values_list("domain", flat=True))
        self.stdout.write(f"Public host names: {hosts}. Root CA key id {root.key_id[:16]}.")
