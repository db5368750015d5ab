"""Authentication of MSP API callers: an MSP (by API token or signed-in MSP user) or vendor staff."""

from __future__ import annotations

from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from audit.models import AuditEvent
from audit.services import Actor
from common.http import bearer_token, client_address
from msp.models import MSP
from msp.services.accounts import TokenRejected, authenticate_api_token


@dataclass
class MSPPrincipal:
    """The caller of an MSP endpoint; every queryset is scoped to ``msp``."""

    msp: MSP
    actor: Actor
    is_authenticated: bool = True


class MSPTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer ztsp_msp_...``."""

    def authenticate(self, request):
        token_text = bearer_token(request)
        if not token_text or not token_text.startswith("ztsp_msp_"):
            return None
        try:
            token = authenticate_api_token(token_text)
        except TokenRejected as error:
            raise exceptions.AuthenticationFailed(
                f"The MSP API token is {error}; create a new token.", code="invalid_token"
            ) from error
        actor = Actor(AuditEvent.ActorType.MSP_TOKEN, f"token:{token.key_id}", client_address(request),
                      msp_id=token.msp_id)
        return MSPPrincipal(token.msp, actor), token

    def authenticate_header(self, request):
        return 'Bearer realm="msp"'


def msp_of(request) -> MSP | None:
    """Return the MSP the caller acts for: from its token, or from the signed-in user's membership."""
    user = request.user
    if isinstance(user, MSPPrincipal):
        return user.msp
    membership = getattr(user, "msp_membership", None) if user and user.is_authenticated else None
    return membership.msp if membership and membership.msp.is_active else None


def actor_of(request) -> Actor:
    user = request.user
    if isinstance(user, MSPPrincipal):
        return user.actor
    msp = msp_of(request)
    return Actor.for_user(user, client_address(request), msp_id=msp.pk if msp else None)


class IsMSP(permissions.BasePermission):
    message = "This endpoint is for MSPs: authenticate with an MSP API token or as an MSP user."

    def has_permission(self, request, view):
        return msp_of(request) is not None


class IsVendorStaff(permissions.BasePermission):
    message = "This endpoint is for vendor staff."

    def has_permission(self, request, view):
        user = request.user
        return bool(user and not isinstance(user, MSPPrincipal) and user.is_authenticated and user.is_staff)


class MSPTokenScheme(OpenApiAuthenticationExtension):
    """Describes :class:`MSPTokenAuthentication` in the OpenAPI schema; defining the class registers it."""

    target_class = MSPTokenAuthentication
    name = "mspToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An MSP API token: ztsp_msp_..."}
