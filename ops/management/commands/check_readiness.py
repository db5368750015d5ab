from django.core.management.base import BaseCommand, CommandError

from ops.health import run_readiness_checks


class Command(BaseCommand):
    help = ("Run the readiness checks of /readyz (PostgreSQL reachable, migrations applied in every schema, "
            "Redis reachable) and print each result; fail when one fails.")

    def handle(self, *args, **options):
        results = run_readiness_checks()
        for result in results:
            self.stdout.write(f"{result.name}: {'ok' if result.ok else result.code + ' - ' + result.detail}")
        failed = [result.name for result in results if not result.ok]
        if failed:
            raise CommandError(f"Not ready: {', '.join(failed)} failed.")
        self.stdout.write("Ready.")
