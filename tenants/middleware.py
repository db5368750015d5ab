from django.core.exceptions import DisallowedHost
from django_tenants.middleware.main import TenantMainMiddleware

from config.api import error_response


class TenantHostMiddleware(TenantMainMiddleware):
    """Select the schema from the Host header; unknown hosts get a JSON 404.

    Django's host validation (ALLOWED_HOSTS) runs first. A rejected host gets
    the same response as an unknown one, so a scan learns nothing.
    """

    def process_request(self, request):
        try:
            request.get_host()
        except DisallowedHost:
            return unknown_host_response(request)
        return super().process_request(request)


def unknown_host_response(request):
    host = request.META.get("HTTP_HOST", "")[:255]
    return error_response(
        404,
        "unknown_host",
        f"No Provision Server or Director tenant is served at host {host!r}; "
        "check the URL, or register the tenant's domain.",
    )
