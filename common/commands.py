"""Helpers shared by management commands."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.services import Actor


def cli_actor() -> Actor:
    """Return the actor of a management command: the operating-system user who ran it."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return Actor.system(f"cli:{name}")


def read_secret(*, file_path: str | None, env_name: str, what: str) -> str:
    """Read a secret from a file ('-' for standard input) or an environment variable, never from argv."""
    if file_path == "-":
        value = sys.stdin.readline().strip()
    elif file_path:
        try:
            value = Path(file_path).read_text().strip()
        except OSError as error:
            raise CommandError(f"Cannot read {what} from {file_path}: {error.strerror}") from error
    else:
        value = os.environ.get(env_name, "").strip()
    if not value:
        raise CommandError(f"Missing {what}: pass --access-key-file FILE (or '-' for stdin) or set {env_name}.")
    return value


def read_product_ids(path: str) -> list[tuple[int, str]]:
    """Read (line, Product ID) pairs from a CSV or plain list file ('-' for standard input)."""
    import io

    from provisioning.services.importing import ImportFileError, ProductIdColumn

    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as error:
        raise CommandError(f"Cannot read {path}: {error.strerror}") from error
    try:
        return list(ProductIdColumn(io.BytesIO(data)))
    except ImportFileError as error:
        raise CommandError(f"Cannot read {path}: {error}") from error


def print_bulk_result(command, result, verb: str) -> None:
    for item in result.rejected:
        command.stdout.write(f"line {item.position}: {item.value!r} rejected: {item.reason}")
    command.stdout.write(
        f"{len(result.changed)} {verb}, {len(result.unchanged)} unchanged, {len(result.rejected)} rejected."
    )


class MSPProductListCommand(BaseCommand):
    """A command that applies one bulk product service of an MSP to the Product IDs of a file.

    Subclasses set ``help``, ``verb`` (past tense for the summary) and
    ``service`` (a function ``(msp, items, *, actor) -> BulkResult``).
    """

    verb = ""

    @staticmethod
    def service(msp, items, *, actor):
        raise NotImplementedError

    def add_arguments(self, parser):
        parser.add_argument("msp", help="MSP slug")
        parser.add_argument("file", help="File of Product IDs, or '-' for standard input")

    def handle(self, *args, msp, file, **options):
        from msp.models import MSP

        target = MSP.objects.filter(slug=msp).first()
        if target is None:
            raise CommandError(f"No MSP with slug {msp!r}.")
        result = self.service(target, read_product_ids(file), actor=cli_actor())
        print_bulk_result(self, result, self.verb)
