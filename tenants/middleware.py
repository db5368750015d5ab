from django.core.exceptions import DisallowedHost
from django.core.signals import request_finished
from django.http.request import split_domain_port
from django_tenants.middleware.main import TenantMainMiddleware
from django_tenants.utils import remove_www

from common.log_context import set_log_schema
from config.api import error_response


class TenantHostMiddleware(TenantMainMiddleware):
    """Select the schema from the Host header; unknown hosts get a JSON 404.

    Django's host validation (ALLOWED_HOSTS) runs first. A rejected host gets
    the same response as an unknown one, so a scan learns nothing.
    """

    @staticmethod
    def hostname_from_request(request):
        """Return the host name that selects the tenant: lower case, without port or trailing dot.

        Host names are case-insensitive (RFC 4343) and ``acme.example.`` is the
        absolute form of ``acme.example``, so both reach the tenant, as they do
        on the long-poll path in ``config.asgi``. Domains are stored in lower
        case. django-tenants splits at the first colon instead, which cuts an
        IPv6 literal such as ``[::1]:8000`` to ``[``.
        """
        domain, _port = split_domain_port(request.get_host())
        return remove_www(domain)

    def process_request(self, request):
        # A thread that served another host before must not tag this request's log records with its tenant.
        set_log_schema(None)
        try:
            request.get_host()
        except DisallowedHost:
            return unknown_host_response(request)
        response = super().process_request(request)
        tenant = getattr(request, "tenant", None)
        if tenant is not None:
            # Django's ASGI handler logs 4xx and 5xx responses from another thread, whose connection
            # names no tenant. The context variable reaches that thread.
            set_log_schema(tenant.schema_name, getattr(tenant, "domain_url", None))
        return response


def _clear_log_schema(**kwargs):
    set_log_schema(None)


# Logs written after the response, in the same thread, belong to no request.
request_finished.connect(_clear_log_schema, dispatch_uid="tenants.middleware.clear_log_schema")


def unknown_host_response(request):
    host = request.META.get("HTTP_HOST", "")[:255]
    return error_response(
        404,
        "unknown_host",
        f"No Provision Server or Director tenant is served at host {host!r}; "
        "check the URL, or register the tenant's domain.",
    )
