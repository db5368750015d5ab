import os
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from common.commands import cli_actor
from msp.models import MSP
from provisioning.services.importing import ImportFileError, import_products

# Seconds between progress lines when stderr is not a terminal (a log, CI).
PLAIN_PROGRESS_INTERVAL = 10.0


class Progress:
    """Shows import progress on stderr: a bar on a terminal, plain periodic lines otherwise."""

    def __init__(self, stream, total_bytes: int | None):
        self.stream = stream
        self.total = total_bytes
        self.terminal = stream.isatty()
        self.started = time.monotonic()
        self.last_line = 0.0

    def __call__(self, bytes_read: int, rows: int) -> None:
        elapsed = time.monotonic() - self.started
        rate = rows / elapsed if elapsed else 0
        share = bytes_read / self.total if self.total else None
        if self.terminal:
            width = 30
            filled = int(width * share) if share is not None else 0
            bar = "#" * filled + "-" * (width - filled)
            percent = f"{share:4.0%}" if share is not None else "   ?"
            self.stream.write(f"\r[{bar}] {percent} {rows:,} rows, {rate:,.0f} rows/s")
            self.stream.flush()
        elif elapsed - self.last_line >= PLAIN_PROGRESS_INTERVAL:
            self.last_line = elapsed
            percent = f" ({share:.0%} of the file)" if share is not None else ""
            self.stream.write(f"{rows:,} rows read in {elapsed:.0f} s{percent}\n")

    def finish(self) -> None:
        if self.terminal:
            self.stream.write("\n")


class Command(BaseCommand):
    help = (
        "Import Product IDs from a manufacturing CSV (one Product ID per row, or a header naming product_id and "
        "optionally serial, model, public_key or secret_sha256; other named columns are kept as metadata). Every "
        "good row is imported, every bad row is reported with its line number; the exit status is non-zero only "
        "when the file cannot be read at all, and then nothing is imported."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV file path, or '-' for standard input")
        parser.add_argument("--dry-run", action="store_true", help="Check the file and report; write nothing.")
        parser.add_argument("--allocate-to", metavar="MSP", help="Also allocate the imported products to this MSP "
                                                                 "(slug)")
        parser.add_argument("--update", action="store_true",
                            help="Correct serial number, credential and metadata of products already stored")
        parser.add_argument("--errors", metavar="FILE",
                            help="Write every rejected row (line, value, reason) to FILE "
                                 "(default: FILE.errors.csv beside the input, when any row is rejected)")

    def handle(self, *args, file, dry_run, allocate_to, update, errors, **options):
        msp = None
        if allocate_to:
            msp = MSP.objects.filter(slug=allocate_to).first()
            if msp is None:
                raise CommandError(f"No MSP with slug {allocate_to!r}; list MSPs in the admin.")

        if errors:
            error_path = Path(errors)
        elif file == "-":
            error_path = None
        else:
            error_path = Path(f"{file}.errors.csv")
        try:
            if file == "-":
                stream, total = sys.stdin.buffer, None
            else:
                stream, total = open(file, "rb"), os.path.getsize(file)
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror}") from error

        progress = Progress(self.stderr._out, total)
        error_file = open(error_path, "w", newline="") if error_path else None
        try:
            report = import_products(stream, actor=cli_actor(), dry_run=dry_run, allocate_to=msp, update=update,
                                     source_name=os.path.basename(file), error_report=error_file,
                                     progress=progress)
        except ImportFileError as error:
            if error_file:
                error_file.close()
                if not errors:
                    error_path.unlink(missing_ok=True)
            raise CommandError(f"{file}: {error}. Nothing was imported.") from error
        finally:
            progress.finish()
            if stream is not sys.stdin.buffer:
                stream.close()
            if error_file and not error_file.closed:
                error_file.close()

        if error_path and not report.rejected_count and not errors:
            error_path.unlink(missing_ok=True)
        for row in report.rejected:
            self.stdout.write(f"line {row.line}: {row.value!r} rejected: {row.reason}")
        if report.rejected_count > len(report.rejected):
            self.stdout.write(f"... and {report.rejected_count - len(report.rejected)} more rejected rows.")
        if report.rejected_count and error_path:
            self.stdout.write(f"Every rejected row is listed in {error_path}.")
        label = f"Import batch {report.batch_id}" if report.batch_id else "Dry run"
        self.stdout.write(f"{label}: {report.summary()} in {report.seconds:.1f} s.")
