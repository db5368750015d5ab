from django.core.management.base import BaseCommand, CommandError

from common.commands import cli_actor
from msp.services.accounts import MSPRejected, add_msp_user, create_api_token, create_msp


class Command(BaseCommand):
    help = "Create an MSP, optionally with a first user, and print a new MSP API token (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="The MSP's name")
        parser.add_argument("--slug", help="Short unique id used in URLs (default: from the name)")
        parser.add_argument("--username", help="Also create this MSP user (password from ZTSP_MSP_USER_PASSWORD)")
        parser.add_argument("--no-token", action="store_true", help="Do not create an API token")

    def handle(self, *args, name, slug, username, no_token, **options):
        import os

        actor = cli_actor()
        try:
            msp = create_msp(name, slug=slug, actor=actor)
        except MSPRejected as error:
            raise CommandError(error.detail) from error
        self.stderr.write(f"Created MSP {msp.slug} (id {msp.pk}).")
        if username:
            add_msp_user(msp, username, actor=actor, password=os.environ.get("ZTSP_MSP_USER_PASSWORD") or None)
            self.stderr.write(f"Created MSP user {username}.")
        if not no_token:
            token, plaintext = create_api_token(msp, "cli", actor=actor)
            self.stderr.write(f"MSP API token {token.key_id}; store it now, it is not shown again:")
            self.stdout.write(plaintext)
