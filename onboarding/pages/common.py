"""Access checks and helpers shared by the tenant admin pages."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required, user_passes_test
from django.db.models import Q, QuerySet
from django.http import Http404, JsonResponse

from onboarding.models import EdgeController

# Rows per page of the pending and onboarded lists, and the maximum ids of one status request.
PAGE_SIZE = 100

# Tunnel status values of the onboarded list and of its JSON endpoint.
ONLINE = "online"
OFFLINE = "offline"
NEVER_CONNECTED = "never"
STATUS_LABELS = {ONLINE: "online", OFFLINE: "offline", NEVER_CONNECTED: "never connected"}


def _is_tenant_admin(user) -> bool:
    return user.is_authenticated and user.is_staff


def tenant_admin_page(view):
    """Require a signed-in admin of this tenant and redirect anyone else to the sign-in page."""
    return login_required(user_passes_test(_is_tenant_admin)(view))


def tenant_admin_json(view):
    """Require a signed-in admin of this tenant, returning a JSON 401 or 403 to anyone else instead of a redirect."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return JsonResponse({"code": "not_authenticated", "detail": "Sign in again; the session has ended."},
                                status=401)
        if not request.user.is_staff:
            return JsonResponse({"code": "permission_denied", "detail": "Sign in as an admin of this tenant."},
                                status=403)
        return view(request, *args, **kwargs)

    return wrapped


def controller_or_404(controller_id) -> EdgeController:
    """Return the EC with this id in the current tenant's schema, so an EC of another tenant is a 404."""
    controller = EdgeController.objects.filter(pk=controller_id).first()
    if controller is None:
        raise Http404("No such Edge Controller in this tenant.")
    return controller


def tunnel_status(controller: EdgeController) -> str:
    if controller.online:
        return ONLINE
    if controller.tunnel_connected_at is None:
        return NEVER_CONNECTED
    return OFFLINE


def filter_by_tunnel_status(queryset: QuerySet, status: str) -> QuerySet:
    if status == ONLINE:
        return queryset.filter(online=True)
    if status == OFFLINE:
        return queryset.filter(online=False, tunnel_connected_at__isnull=False)
    if status == NEVER_CONNECTED:
        return queryset.filter(Q(online=False) & Q(tunnel_connected_at__isnull=True))
    return queryset
