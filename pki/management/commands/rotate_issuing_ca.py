from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context

from common.commands import cli_actor
from pki.models import IssuingCA
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
            known = ", ".join(Tenant.objects.exclude(schema_name="public").order_by("schema_name")
                              .values_list("schema_name", flat=True)[:20])
            raise CommandError(f"No hosted tenant with schema {schema_name!r}; hosted tenants: {known or 'none'}.")
        limit = settings.ZTSP_ISSUING_CA_DAYS
        if overlap_days is not None and not 0 <= overlap_days <= limit:  # also rejects NaN
            raise CommandError(f"--overlap-days is {overlap_days}; pass a number of days from 0 to {limit} "
                               "(ZTSP_ISSUING_CA_DAYS).")
        overlap = timedelta(days=overlap_days) if overlap_days is not None else None
        with schema_context(schema_name):
            retired = IssuingCA.objects.filter(is_active=True).first()
            new_ca = rotate_issuing_ca(tenant, actor=cli_actor(), overlap=overlap)
            if retired is not None:
                retired.refresh_from_db()
        self.stdout.write(f"Tenant {schema_name}: issuing CA {new_ca.key_id} is now active.")
        if retired is not None:
            self.stdout.write(f"Issuing CA {retired.key_id} is retired and trusted until "
                              f"{retired.trusted_until:%Y-%m-%d %H:%M:%S} UTC.")
