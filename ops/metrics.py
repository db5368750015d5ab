"""Prometheus metrics of ZTSP.

Three sources, each collected where it is exact:

* Counters and histograms that processes update as they work: HTTP requests
  and ZTP lookup outcomes (web), Celery task queue wait and run time (worker
  pool processes). With ``PROMETHEUS_MULTIPROC_DIR`` set, every process of a
  container writes them to files in that folder, and the scrape adds them up.
  This is prometheus_client's multiprocess mode. Without the folder, each
  process serves its own.
* Gauges read from the database at scrape time (:class:`DatabaseCollector`):
  onboard requests by state, tunnels online, certificates issued, per tenant
  schema. They are the same whichever web process answers and however many
  workers and gateways write them, so only the web's ``/metrics`` serves them.
* The live tunnels of one gateway process (:class:`GatewayCollector`), on the
  gateway's own metrics port.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from django.conf import settings
from django.db import DatabaseError, connection
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)

HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

HTTP_REQUESTS = Counter("ztsp_http_requests", "HTTP responses sent by the web server, by method and status code.",
                        ["method", "status"])
ZTP_LOOKUPS = Counter("ztsp_ztp_lookups", "ZTP lookups answered, by outcome: ok, or the error code of the response.",
                      ["outcome"])
# Seconds; the buckets reach past CELERY_TASK_TIME_LIMIT (90 s) so a stuck queue shows.
TASK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TASK_QUEUE_WAIT = Histogram("ztsp_celery_task_queue_wait_seconds",
                            "Seconds from publishing a Celery task (or its ETA) to a worker starting it.",
                            ["task"], buckets=TASK_BUCKETS)
TASK_RUN = Histogram("ztsp_celery_task_run_seconds", "Seconds a Celery task ran, by task and final state.",
                     ["task", "state"], buckets=TASK_BUCKETS)


def process_registry() -> CollectorRegistry:
    """Return the registry of the counters and histograms of this process, or of every process sharing its folder."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry
    return REGISTRY


class DatabaseCollector:
    """Gauges and counters read from every tenant schema at scrape time, reused for ``ZTSP_METRICS_CACHE_SECONDS``.

    Each metric is one ``UNION ALL`` query over the tenant schemas, so a scrape
    costs three queries whatever the number of tenants. The number of series
    is the number of tenants times the onboard request states.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._cached_at = float("-inf")
        self._cached: list = []

    def collect(self):
        with self._lock:
            if time.monotonic() - self._cached_at > settings.ZTSP_METRICS_CACHE_SECONDS:
                self._cached = self._read()
                self._cached_at = time.monotonic()
            return list(self._cached)

    def _read(self) -> list:
        up = GaugeMetricFamily("ztsp_database_metrics_up",
                               "1 when the metrics read from the database in this scrape succeeded, else 0.")
        try:
            rows = read_tenant_counts()
        except DatabaseError as error:
            logger.warning("Metrics: reading counts from the database failed: %s", error)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)

        requests = GaugeMetricFamily("ztsp_onboard_requests", "Onboard requests by tenant schema and status.",
                                     labels=["schema", "status"])
        for schema, status, count in rows["onboard_requests"]:
            requests.add_metric([schema, status], count)
        online = GaugeMetricFamily(
            "ztsp_tunnels_online", "ECs with a management tunnel up, as the gateways recorded it, by tenant schema.",
            labels=["schema"])
        issued = CounterMetricFamily("ztsp_certificates_issued",
                                     "EC certificates issued (onboard, renewal, EST), by tenant schema.",
                                     labels=["schema"])
        active = GaugeMetricFamily("ztsp_certificates_active", "EC certificates not revoked, by tenant schema.",
                                   labels=["schema"])
        for schema, online_count in rows["tunnels_online"]:
            online.add_metric([schema], online_count)
        for schema, issued_count, active_count in rows["certificates"]:
            issued.add_metric([schema], issued_count)
            active.add_metric([schema], active_count)
        return [up, requests, online, issued, active]


def _union(schemas: list[str], select: str) -> tuple[str, list[str]]:
    # Schema names match tenants.services.SCHEMA_NAME_RE (lower-case letters,
    # digits, '_'), so they are safe inside a quoted identifier.
    parts = [select.format(schema=f'"{schema}"') for schema in schemas]
    return " UNION ALL ".join(parts), list(schemas)


def read_tenant_counts() -> dict[str, list[tuple]]:
    """Read the per-tenant counts of the database gauges, one query per metric."""
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute("SELECT schema_name FROM tenants_tenant WHERE schema_name <> %s ORDER BY 1",
                       [settings.PUBLIC_SCHEMA_NAME])
        schemas = [row[0] for row in cursor.fetchall()]
        if not schemas:
            return {"onboard_requests": [], "tunnels_online": [], "certificates": []}

        sql, params = _union(schemas, "SELECT %s, status, count(*) FROM {schema}.onboarding_onboardrequest "
                                      "GROUP BY status")
        cursor.execute(sql, params)
        onboard_requests = cursor.fetchall()
        sql, params = _union(schemas, "SELECT %s, count(*) FILTER (WHERE online) "
                                      "FROM {schema}.onboarding_edgecontroller")
        cursor.execute(sql, params)
        tunnels_online = cursor.fetchall()
        sql, params = _union(schemas, "SELECT %s, count(*), count(*) FILTER (WHERE revoked_at IS NULL) "
                                      "FROM {schema}.pki_issuedcertificate")
        cursor.execute(sql, params)
        certificates = cursor.fetchall()
    return {"onboard_requests": onboard_requests, "tunnels_online": tunnels_online, "certificates": certificates}


class GatewayCollector:
    """Gauge of the open tunnels of one gateway process, read from its sessions at scrape time."""

    def __init__(self, gateway):
        self.gateway = gateway

    def collect(self):
        gauge = GaugeMetricFamily("ztsp_gateway_tunnels_connected",
                                  "Management tunnels this gateway process holds now (after the hello).")
        gauge.add_metric([], len(self.gateway.sessions))
        yield gauge


_database_collector = DatabaseCollector()


def render_web_metrics() -> bytes:
    """Return the exposition text of the web's ``/metrics``: process metrics, then the database gauges."""
    database = CollectorRegistry(auto_describe=False)
    database.register(_database_collector)
    return generate_latest(process_registry()) + generate_latest(database)
