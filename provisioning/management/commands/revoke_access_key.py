from django.core.management.base import BaseCommand, CommandError

from common.commands import cli_actor
from provisioning.models import ProvisioningAccessKey
from provisioning.services.access_keys import revoke_access_key


class Command(BaseCommand):
    help = "Revoke a provisioning access key by its key id; lookups with it then get 401."

    def add_arguments(self, parser):
        parser.add_argument("key_id", help="The key id (the hex part after 'ztsp_pk_')")

    def handle(self, *args, key_id, **options):
        access_key = ProvisioningAccessKey.objects.filter(key_id=key_id).first()
        if access_key is None:
            raise CommandError(f"No access key with id {key_id!r}; list keys in the admin.")
        revoke_access_key(access_key, actor=cli_actor())
        self.stdout.write(f"Revoked access key {key_id}.")
