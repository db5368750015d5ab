"""Liveness, readiness and metrics endpoints, mounted on the public host names by :mod:`ops.middleware`."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST

from config.api import error_response
from ops.access import check_scrape_access
from ops.health import run_readiness_checks
from ops.metrics import render_web_metrics


def liveness(request: HttpRequest) -> JsonResponse:
    """Return 200 while the process serves requests; it checks no dependency, so a restart never depends on one."""
    return JsonResponse({"status": "alive"})


def readiness(request: HttpRequest) -> JsonResponse:
    """Return 200 when PostgreSQL, the migrations and Redis are usable, else 503 naming the first failure."""
    results = run_readiness_checks()
    checks = {result.name: "ok" if result.ok else result.code for result in results}
    failed = [result for result in results if not result.ok]
    if not failed:
        return JsonResponse({"status": "ready", "checks": checks})
    detail = " ".join(dict.fromkeys(result.detail for result in failed))
    return error_response(503, failed[0].code, detail, checks=checks)


def metrics(request: HttpRequest) -> HttpResponse:
    """Return the Prometheus exposition text, to the metrics token holder (or loopback, with no token set)."""
    rejected = check_scrape_access(request.headers.get("Authorization"), request.META.get("REMOTE_ADDR"))
    if rejected is not None:
        headers = {"WWW-Authenticate": 'Bearer realm="metrics"'} if rejected.status == 401 else None
        return error_response(rejected.status, rejected.code, rejected.detail, headers=headers)
    return HttpResponse(render_web_metrics(), content_type=CONTENT_TYPE_LATEST)
