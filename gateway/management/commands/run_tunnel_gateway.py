import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand
from prometheus_client import CollectorRegistry

from gateway import records
from gateway.server import TunnelGateway, build_server_context
from ops.metrics import GatewayCollector, process_registry
from ops.metrics_server import start_metrics_server


class Command(BaseCommand):
    help = "Run the tunnel gateway: a TLS 1.3 server that requires EC client certificates from tenant CAs."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=settings.ZTSP_TUNNEL_BIND, help="Address to listen on")
        parser.add_argument("--port", type=int, default=settings.ZTSP_TUNNEL_PORT, help="TCP port to listen on")
        parser.add_argument("--heartbeat-interval", type=int, default=settings.ZTSP_HEARTBEAT_INTERVAL,
                            help="Seconds between EC heartbeats")
        parser.add_argument("--metrics-port", type=int, default=settings.ZTSP_GATEWAY_METRICS_PORT,
                            help="TCP port of the gateway's Prometheus metrics (0: none)")
        parser.add_argument("--reset-online", action="store_true",
                            help="Mark every EC offline at start (only when this is the sole gateway)")

    def handle(self, *args, bind, port, heartbeat_interval, reset_online, metrics_port, **options):
        # Outside production the certificate also names "localhost" for local tools; pkilint rejects that
        # one-label name, so a production certificate carries only the public host.
        names = sorted({settings.ZTSP_TUNNEL_PUBLIC_HOST} | (set() if settings.PRODUCTION else {"localhost"}))
        context = build_server_context(dns_names=names, ip_addresses=["127.0.0.1", "::1"])
        if reset_online:
            count = records.mark_all_offline()
            self.stderr.write(f"Marked {count} ECs offline.")
        asyncio.run(self._run(context, bind, port, heartbeat_interval, metrics_port))

    async def _run(self, context, bind, port, heartbeat_interval, metrics_port):
        gateway = TunnelGateway(server_context=context, heartbeat_interval=heartbeat_interval,
                                redis_url=settings.REDIS_URL)
        await gateway.start(bind, port)
        if metrics_port:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(GatewayCollector(gateway))
            start_metrics_server(settings.ZTSP_METRICS_BIND, metrics_port, [process_registry(), registry])
        self.stdout.write(f"Tunnel gateway listening on {bind}:{port}")
        self.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await gateway.stop()
        self.stdout.write("Tunnel gateway stopped.")
