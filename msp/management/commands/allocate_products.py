from django.core.management.base import BaseCommand, CommandError

from common.commands import cli_actor, print_bulk_result, read_product_ids
from msp.models import MSP
from msp.services.products import allocate_products


class Command(BaseCommand):
    help = "Allocate the Product IDs listed in FILE (CSV or one per line) to an MSP."

    def add_arguments(self, parser):
        parser.add_argument("msp", help="MSP slug")
        parser.add_argument("file", help="File of Product IDs, or '-' for standard input")

    def handle(self, *args, msp, file, **options):
        target = MSP.objects.filter(slug=msp).first()
        if target is None:
            raise CommandError(f"No MSP with slug {msp!r}.")
        result = allocate_products(target, read_product_ids(file), actor=cli_actor())
        print_bulk_result(self, result, "allocated")
