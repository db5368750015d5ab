import tempfile
from pathlib import Path

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand

from est import https


class Command(BaseCommand):
    help = ("Run the HTTPS server of the tenant hosts, which serves EST (/.well-known/est/) and accepts "
            "TLS client certificates for simplereenroll.")

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1", help="Address to listen on")
        parser.add_argument("--port", type=int, default=settings.ZTSP_HTTPS_PORT, help="TCP port to listen on")
        parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                            help="Log level of the uvicorn server")

    def handle(self, *args, bind, port, log_level, **options):
        dns_names = https.server_dns_names()
        with tempfile.TemporaryDirectory(prefix="ztsp-https-") as folder:
            files = https.write_server_files(Path(folder), dns_names=dns_names, ip_addresses=["127.0.0.1"])
            config = https.server_config(files, bind=bind, port=port, log_level=log_level)
            # Loading builds the TLS context, which reads the key, so the folder can go right after.
            config.load()
        # NOTE: a tenant domain created after this start is missing from the
        # server certificate until the server is restarted.
        self.stdout.write(f"EST HTTPS server starting on https://{bind}:{port} for {', '.join(dns_names)}")
        self.stdout.flush()
        # uvicorn stops on SIGINT or SIGTERM and logs its own shutdown.
        uvicorn.Server(config).run()
