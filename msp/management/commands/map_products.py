from django.core.management.base import BaseCommand, CommandError

from common.commands import cli_actor, print_bulk_result, read_product_ids
from msp.models import MSP, TenantRegistration
from msp.services.products import map_products_to_tenant


class Command(BaseCommand):
    help = "Map the claimed Product IDs listed in FILE to one of the MSP's registered tenants."

    def add_arguments(self, parser):
        parser.add_argument("msp", help="MSP slug")
        parser.add_argument("management_url", help="Management URL of the tenant registration")
        parser.add_argument("file", help="File of Product IDs, or '-' for standard input")

    def handle(self, *args, msp, management_url, file, **options):
        from msp.management_urls import InvalidManagementUrl, normalize_management_url

        target = MSP.objects.filter(slug=msp).first()
        if target is None:
            raise CommandError(f"No MSP with slug {msp!r}.")
        try:
            url = normalize_management_url(management_url)
        except InvalidManagementUrl as error:
            raise CommandError(str(error)) from error
        registration = TenantRegistration.objects.filter(msp=target, management_url=url).first()
        if registration is None:
            raise CommandError(f"MSP {msp} has no tenant registered at {url}; run register_tenant first.")
        result = map_products_to_tenant(target, registration, read_product_ids(file), actor=cli_actor())
        print_bulk_result(self, result, "mapped")
