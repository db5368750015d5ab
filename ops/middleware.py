"""Counts responses for the metrics, and serves the operations endpoints before the tenant lookup."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http.request import split_domain_port
from django.urls import Resolver404, resolve

from ops.metrics import HTTP_METHODS, HTTP_REQUESTS, ZTP_LOOKUPS
from provisioning.services.lookup import LOOKUP_OK

ZTP_LOOKUP_URL_NAME = "ztp-lookup"


def _ops_view(request):
    """Return the operations view for ``request`` when its host is a public host name, else None.

    The tenant middleware maps a host to a schema by reading the Domain table.
    Behind it, liveness would depend on PostgreSQL, and a database outage
    would give a 500 instead of a 503 that names the database. Tenant hosts
    do not serve these endpoints, so a tenant's management URL, which ECs and
    MSPs know, reveals nothing about the deployment.
    """
    try:
        host = request.get_host()
    except DisallowedHost:
        return None
    hostname, _port = split_domain_port(host)
    if hostname not in {name.lower() for name in settings.ZTSP_PUBLIC_HOSTS}:
        return None
    try:
        match = resolve(request.path_info, urlconf="ops.urls")
    except Resolver404:
        return None
    return match.func


def _count(request, response) -> None:
    method = request.method if request.method in HTTP_METHODS else "other"
    HTTP_REQUESTS.labels(method, str(response.status_code)).inc()
    match = getattr(request, "resolver_match", None)
    if match is not None and match.url_name == ZTP_LOOKUP_URL_NAME:
        data = getattr(response, "data", None)
        code = data.get("code") if isinstance(data, dict) else None
        outcome = LOOKUP_OK if response.status_code == 200 else (code or str(response.status_code))
        ZTP_LOOKUPS.labels(outcome).inc()


class OpsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        view = _ops_view(request)
        response = view(request) if view is not None else self.get_response(request)
        _count(request, response)
        return response
