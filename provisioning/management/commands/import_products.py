from django.core.management.base import BaseCommand, CommandError

from common.commands import cli_actor
from provisioning.services.importing import ImportFileError, import_products


class Command(BaseCommand):
    help = (
        "Import Product IDs from a manufacturing CSV (one Product ID per row, or a 'product_id' column). "
        "Every good row is imported, every bad row is reported with its line number."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV file path, or '-' for standard input")
        parser.add_argument("--dry-run", action="store_true", help="Check the file and report; write nothing.")

    def handle(self, *args, file, dry_run, **options):
        try:
            if file == "-":
                import sys

                report = import_products(sys.stdin.buffer, actor=cli_actor(), dry_run=dry_run)
            else:
                with open(file, "rb") as stream:
                    report = import_products(stream, actor=cli_actor(), dry_run=dry_run)
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror}") from error
        except ImportFileError as error:
            raise CommandError(f"{file}: {error}. Nothing was imported.") from error

        for row in report.rejected:
            self.stdout.write(f"line {row.line}: {row.value!r} rejected: {row.reason}")
        self.stdout.write(report.summary())
