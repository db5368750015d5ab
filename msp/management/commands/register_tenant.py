from django.core.management.base import BaseCommand, CommandError

from common.commands import cli_actor, read_secret
from msp.management_urls import InvalidManagementUrl
from msp.models import MSP
from msp.services.registrations import RegistrationRejected, register_tenant


class Command(BaseCommand):
    help = (
        "Register a Director tenant (management URL + access key) for an MSP. The access key is read from "
        "--access-key-file or ZTSP_TENANT_ACCESS_KEY, never from the command line."
    )

    def add_arguments(self, parser):
        parser.add_argument("msp", help="MSP slug")
        parser.add_argument("name", help="Tenant name as the MSP calls it")
        parser.add_argument("management_url", help="The tenant's URL, e.g. https://acme.director.example")
        parser.add_argument("--access-key-file", help="File containing the tenant access key ('-' for stdin)")

    def handle(self, *args, msp, name, management_url, access_key_file, **options):
        target = MSP.objects.filter(slug=msp).first()
        if target is None:
            raise CommandError(f"No MSP with slug {msp!r}.")
        key = read_secret(file_path=access_key_file, env_name="ZTSP_TENANT_ACCESS_KEY", what="tenant access key")
        try:
            registration = register_tenant(target, name=name, management_url=management_url, access_key=key,
                                           actor=cli_actor())
        except (InvalidManagementUrl, RegistrationRejected) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Registered tenant {registration.name} at {registration.management_url} "
                          f"(registration id {registration.pk}).")
