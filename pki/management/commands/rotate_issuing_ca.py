from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context

from common.commands import cli_actor
from pki.services import rotate_issuing_ca
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Give a tenant a new issuing CA. New certificates come from it at once; the old CA stays trusted for "
        "the overlap, during which ECs are reminded to renew over their tunnel."
    )

    def add_arguments(self, parser):
        parser.add_argument("schema_name", help="Schema name of the tenant, e.g. acme")
        parser.add_argument("--overlap-days", type=float, default=None,
                            help=f"Days the old CA stays trusted (default ZTSP_CA_OVERLAP_DAYS, "
                                 f"now {settings.ZTSP_CA_OVERLAP_DAYS})")

    def handle(self, *args, schema_name, overlap_days, **options):
        tenant = Tenant.objects.exclude(schema_name="public").filter(schema_name=schema_name).first()
        if tenant is None:
            raise CommandError(f"No hosted tenant with schema {schema_name!r}.")
        if overlap_days is not None and overlap_days < 0:
            raise CommandError(f"--overlap-days is {overlap_days}; pass zero or more days.")
        overlap = timedelta(days=overlap_days) if overlap_days is not None else None
        with schema_context(schema_name):
            new_ca = rotate_issuing_ca(tenant, actor=cli_actor(), overlap=overlap)
        self.stdout.write(f"Tenant {schema_name}: issuing CA {new_ca.key_id} is now active.")
