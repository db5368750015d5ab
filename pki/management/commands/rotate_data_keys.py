from cryptography.fernet import Fernet
from django.core.management.base import BaseCommand, CommandError

from common.commands import cli_actor
from pki.custody import rotate_data_keys


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret kept at rest (CA private keys, registered tenant access keys) under the first "
        "key of ZTSP_DATA_KEYS. Put the new key first and keep the old one after it while this runs; remove "
        "the old key afterwards."
    )

    def add_arguments(self, parser):
        parser.add_argument("--generate-key", action="store_true",
                            help="Print a new data key to put first in ZTSP_DATA_KEYS, and do nothing else")
        parser.add_argument("--check", action="store_true",
                            help="Only check that the configured keys open every stored secret")

    def handle(self, *args, generate_key, check, **options):
        if generate_key:
            self.stdout.write(Fernet.generate_key().decode())
            return
        report = rotate_data_keys(actor=cli_actor(), dry_run=check)
        verb = "readable" if check else "re-encrypted"
        self.stdout.write(f"{report.root_cas} root CA keys, {report.issuing_cas} issuing CA keys and "
                          f"{report.tenant_registrations} tenant access keys {verb}.")
        if report.unreadable:
            for label in report.unreadable:
                self.stderr.write(f"No key in ZTSP_DATA_KEYS opens the secret of {label}.")
            raise CommandError(f"{len(report.unreadable)} secrets could not be opened; add the data key that "
                               "encrypted them to ZTSP_DATA_KEYS and run this again.")
