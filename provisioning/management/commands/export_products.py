import sys

from django.core.management.base import BaseCommand, CommandError

from msp.models import MSP
from provisioning.models import Product
from provisioning.services.exporting import export_products


class Command(BaseCommand):
    help = "Export products as a manufacturing CSV (the format import_products reads), optionally filtered."

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", default="-", help="Output file path (default: standard output)")
        parser.add_argument("--msp", help="Only products allocated to this MSP (slug)")
        parser.add_argument("--state", choices=[choice for choice, _label in Product.State.choices],
                            help="Only products in this state")
        parser.add_argument("--model", help="Only products of this model number")
        parser.add_argument("--include-secret-hashes", action="store_true",
                            help="Also write the secret_sha256 column. Each hash lets its reader answer the "
                                 "device's lookup challenges, so treat the file as a secret.")

    def handle(self, *args, output, msp, state, model, include_secret_hashes, **options):
        target = None
        if msp:
            target = MSP.objects.filter(slug=msp).first()
            if target is None:
                raise CommandError(f"No MSP with slug {msp!r}.")
        try:
            stream = sys.stdout.buffer if output == "-" else open(output, "wb")
        except OSError as error:
            raise CommandError(f"Cannot write {output}: {error.strerror}") from error
        try:
            count = export_products(stream, msp=target, state=state, model_number=model,
                                    include_secret_hashes=include_secret_hashes)
        finally:
            if output != "-":
                stream.close()
        self.stderr.write(f"Exported {count} products.")
        if include_secret_hashes:
            self.stderr.write("The file contains device secret hashes: keep it as secret as the devices' secrets.")
