from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from common.commands import cli_actor
from provisioning.services.access_keys import create_access_key


class Command(BaseCommand):
    help = "Create a provisioning access key for EC firmware. The key is printed once and never stored."

    def add_arguments(self, parser):
        parser.add_argument("name", help="A label, e.g. the firmware line that carries the key")
        parser.add_argument("--expires-in-days", type=int, help="Days until the key stops working (default: never)")
        parser.add_argument("--allowed-models", default="",
                            help="Comma-separated model numbers the key may look up (default: any model)")

    def handle(self, *args, name, expires_in_days, allowed_models, **options):
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        try:
            access_key, plaintext = create_access_key(name, actor=cli_actor(), expires_at=expires_at,
                                                      allowed_models=allowed_models)
        except ValueError as error:
            raise CommandError(f"{error}; give model numbers such as EC100,EC200.") from error
        self.stderr.write(f"Created access key {access_key.key_id} ({name}); store it now, it is not shown again:")
        self.stdout.write(plaintext)
