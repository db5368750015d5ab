from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context

from common.commands import cli_actor
from onboarding.models import OnboardRequest
from onboarding.services import InvalidTransition, approve_onboard_request, reject_onboard_request
from provisioning.product_ids import InvalidProductId, normalize_product_id
from tenants.models import Tenant


class Command(BaseCommand):
    help = "List, approve or reject a tenant's onboard requests."

    def add_arguments(self, parser):
        parser.add_argument("schema_name", help="The tenant's schema name")
        parser.add_argument("action", choices=["list", "approve", "reject"])
        parser.add_argument("product_ids", nargs="*", help="Product IDs to approve or reject (their pending request)")
        parser.add_argument("--all-pending", action="store_true", help="Act on every pending request")
        parser.add_argument("--tags", default="", help="Comma-separated tags given on approval")
        parser.add_argument("--note", default="", help="Reason kept with the decision")

    def handle(self, *args, schema_name, action, product_ids, all_pending, tags, note, **options):
        if not Tenant.objects.filter(schema_name=schema_name).exclude(schema_name="public").exists():
            raise CommandError(f"No tenant with schema {schema_name!r}.")
        with schema_context(schema_name):
            pending = OnboardRequest.objects.filter(status=OnboardRequest.Status.PENDING).order_by("created_at")
            if action == "list":
                for item in pending:
                    flags = []
                    if item.key_change:
                        flags.append("NEW-KEY")
                    elif item.conflict:
                        flags.append("CONFLICT")
                    if item.device_proof == OnboardRequest.DeviceProof.MISSING:
                        flags.append("DEVICE-CREDENTIAL-NOT-PROVEN")
                    elif item.device_proof == OnboardRequest.DeviceProof.VERIFIED:
                        flags.append("device-credential-proven")
                    flag = "".join(f" {name}" for name in flags)
                    self.stdout.write(f"{item.pk} {item.product_id} from {item.source_address}{flag}")
                self.stdout.write(f"{pending.count()} pending.")
                return
            if not all_pending and not product_ids:
                raise CommandError("Name Product IDs or pass --all-pending.")
            try:
                wanted = [normalize_product_id(value) for value in product_ids]
            except InvalidProductId as error:
                raise CommandError(f"{error}; give Product IDs as ModelNo:UUID.") from error
            targets = list(pending if all_pending else pending.filter(product_id__in=wanted))
            missing = set(wanted) - {item.product_id for item in targets}
            for product_id in sorted(missing):
                self.stderr.write(f"{product_id}: no pending onboard request in {schema_name}.")
            done = 0
            for item in targets:
                try:
                    if action == "approve":
                        approve_onboard_request(item, actor=cli_actor(), tags=tags.split(","), note=note)
                    else:
                        reject_onboard_request(item, actor=cli_actor(), note=note)
                    done += 1
                except InvalidTransition as error:
                    self.stderr.write(f"{item.product_id}: {error.detail}")
            past = {"approve": "approved", "reject": "rejected"}[action]
            self.stdout.write(f"{done} {past} of {len(targets)} pending.")
