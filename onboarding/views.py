"""EC HTTP API on a Director tenant host, and the tenant admin's onboarding API."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import authentication, generics, permissions
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import Actor
from common.http import bearer_token, client_address
from config.api import ApiError
from onboarding import serializers as s
from onboarding.longpoll import poll_onboard_request, read_request_state
from onboarding.models import EdgeController, OnboardRequest
from onboarding.services import (
    InvalidTransition,
    OnboardRejected,
    approve_onboard_request,
    reject_onboard_request,
    submit_onboard_request,
)
from onboarding.throttles import OnboardClientThrottle, OnboardProductThrottle, WrongAccessKeyThrottle
from provisioning.serializers import ErrorSerializer
from tenants.services import tenant_access_key_matches

logger = logging.getLogger(__name__)

BEARER = OpenApiParameter("Authorization", str, OpenApiParameter.HEADER, required=True,
                          description="Bearer <tenant access key>")


class OnboardView(APIView):
    """``POST /api/v1/onboard``: an EC requests onboarding with its CSR."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [OnboardClientThrottle]

    @extend_schema(
        operation_id="onboard_submit",
        request=s.OnboardSubmitSerializer,
        parameters=[BEARER],
        responses={
            202: s.OnboardAcceptedSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Invalid body or CSR"),
            401: OpenApiResponse(ErrorSerializer, description="Wrong tenant access key"),
            413: OpenApiResponse(ErrorSerializer, description="Body too large"),
            429: OpenApiResponse(ErrorSerializer, description="Throttled; see Retry-After"),
        },
        tags=["EC API"],
    )
    def post(self, request):
        wrong_keys = WrongAccessKeyThrottle()
        if not wrong_keys.allow_request(request, self):
            self.throttled(request, wrong_keys.wait())
        if not tenant_access_key_matches(request.tenant, bearer_token(request)):
            wrong_keys.record_failure()
            raise ApiError(401, "invalid_access_key",
                           "Missing or wrong tenant access key: use the access_key that the ZTP lookup returned.",
                           headers={"WWW-Authenticate": 'Bearer realm="onboard"'})
        # Counted only after the key passed, so a caller without the key
        # cannot use up a device's allowance.
        product_throttle = OnboardProductThrottle()
        if not product_throttle.allow_request(request, self):
            self.throttled(request, product_throttle.wait())
        serializer = s.OnboardSubmitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            result = submit_onboard_request(data["product_id"], data["csr"], data["facts"],
                                            source_address=client_address(request),
                                            lookup_proof=data.get("lookup_proof"))
        except OnboardRejected as error:
            raise ApiError(400, error.code, error.detail) from error
        status_value = result.request.status
        if status_value == OnboardRequest.Status.SUPERSEDED:
            status_value = OnboardRequest.Status.REJECTED
        return Response(
            {"request_id": str(result.request.pk), "status": status_value, "poll_token": result.poll_token},
            status=202,
        )


class OnboardStatusView(APIView):
    """``GET /api/v1/onboard/<request_id>?wait=<seconds>``: long-poll for the result.

    Under ASGI the fast path in ``config.asgi`` serves this route before
    Django. This view serves the same contract elsewhere (WSGI, tests).
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="onboard_poll",
        parameters=[
            OpenApiParameter("Authorization", str, OpenApiParameter.HEADER, required=True,
                             description="Bearer <poll_token>"),
            OpenApiParameter("wait", float, OpenApiParameter.QUERY,
                             description="Seconds to wait for a state change (capped at 60)"),
        ],
        responses={200: s.OnboardStatusSerializer, 401: ErrorSerializer, 404: ErrorSerializer},
        tags=["EC API"],
    )
    def get(self, request, request_id: str):
        # Reads run in this request's own thread: it owns the connection (and,
        # in tests, the open transaction).
        result = async_to_sync(poll_onboard_request)(
            schema_name=connection.schema_name, request_id=str(request_id), poll_token=bearer_token(request),
            wait_raw=request.query_params.get("wait"),
            run_sync=sync_to_async(read_request_state, thread_sensitive=True),
        )
        response = Response(result.body, status=result.status)
        for name, value in result.headers.items():
            response[name] = value
        return response


@extend_schema(responses={(200, "application/pem-certificate-chain"): str}, tags=["EC API"])
class CaChainView(APIView):
    """``GET /api/v1/pki/ca``: the tenant's trusted issuing CAs (active first), then the root CA, as PEM.

    Outside a CA rotation that is one issuing CA and the root.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request):
        from pki.services import trust_bundle_pem

        return HttpResponse(trust_bundle_pem(), content_type="application/pem-certificate-chain")


@extend_schema(responses={(200, "application/pkix-crl"): bytes}, tags=["EC API"])
class CrlView(APIView):
    """``GET /api/v1/pki/crl``: the CRL of the tenant's active issuing CA (DER), re-signed after each revocation.

    ``GET /api/v1/pki/crl/<key id>`` serves the CRL of one issuing CA, active
    or retired; it is the CRL distribution point in that CA's certificates.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request, key_id: str | None = None):
        from pki.models import IssuingCA
        from pki.services import current_crl_der

        issuing_ca = None
        if key_id is not None:
            issuing_ca = IssuingCA.objects.filter(key_id=key_id.lower()).first()
            if issuing_ca is None:
                raise ApiError(404, "issuing_ca_not_found",
                               f"No issuing CA of this tenant has key id {key_id[:64]!r}; "
                               "use the URL in the certificate's CRL distribution point.")
        return HttpResponse(current_crl_der(issuing_ca), content_type="application/pkix-crl")


class CrlByCaView(CrlView):
    """``GET /api/v1/pki/crl/<key id>``: the CRL of one issuing CA of this tenant, active or retired."""

    @extend_schema(operation_id="api_v1_pki_crl_by_ca_retrieve", responses={(200, "application/pkix-crl"): bytes},
                   tags=["EC API"])
    def get(self, request, key_id: str | None = None):
        return super().get(request, key_id)


# Tenant admin API: users of this tenant's schema, by session or HTTP Basic.

# Basic first: DRF responds with the first class's challenge, so a missing or
# wrong password gets 401 with WWW-Authenticate rather than 403.
TENANT_ADMIN_AUTHENTICATION = [authentication.BasicAuthentication, authentication.SessionAuthentication]


class IsTenantAdmin(permissions.BasePermission):
    message = "Sign in as an admin of this tenant."

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff)


def tenant_actor(request) -> Actor:
    return Actor.for_user(request.user, client_address(request))


class NewestFirstPagination(CursorPagination):
    ordering = "-created_at"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class ProductIdPagination(CursorPagination):
    ordering = "product_id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


@extend_schema_view(get=extend_schema(tags=["Director API"]))
class OnboardRequestListView(generics.ListAPIView):
    """Onboard requests of this tenant, newest first; ``?status=pending`` filters."""

    authentication_classes = TENANT_ADMIN_AUTHENTICATION
    permission_classes = [IsTenantAdmin]
    serializer_class = s.OnboardRequestSerializer
    pagination_class = NewestFirstPagination

    def get_queryset(self):
        queryset = OnboardRequest.objects.all()
        status_filter = self.request.query_params.get("status")
        if status_filter:
            queryset = queryset.filter(status=status_filter)
        return queryset


@extend_schema_view(get=extend_schema(tags=["Director API"]))
class EdgeControllerListView(generics.ListAPIView):
    authentication_classes = TENANT_ADMIN_AUTHENTICATION
    permission_classes = [IsTenantAdmin]
    serializer_class = s.EdgeControllerSerializer
    pagination_class = ProductIdPagination
    queryset = EdgeController.objects.prefetch_related("tags")


def _request_or_404(request_id) -> OnboardRequest:
    onboard_request = OnboardRequest.objects.filter(pk=request_id).first()
    if onboard_request is None:
        raise ApiError(404, "onboard_request_not_found", f"Onboard request {request_id} not found in this tenant.")
    return onboard_request


class DecisionView(APIView):
    authentication_classes = TENANT_ADMIN_AUTHENTICATION
    permission_classes = [IsTenantAdmin]
    decision = "approve"

    @extend_schema(request=s.DecisionSerializer, responses={200: s.OnboardRequestSerializer},
                   tags=["Director API"])
    def post(self, request, request_id):
        onboard_request = _request_or_404(request_id)
        serializer = s.DecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            if self.decision == "approve":
                updated = approve_onboard_request(onboard_request, actor=tenant_actor(request), tags=data["tags"],
                                                  note=data["note"])
            else:
                updated = reject_onboard_request(onboard_request, actor=tenant_actor(request), note=data["note"])
        except InvalidTransition as error:
            raise ApiError(409 if error.code == "not_pending" else 400, error.code, error.detail) from error
        return Response(s.OnboardRequestSerializer(updated).data)


def _controller_or_404(product_id: str) -> EdgeController:
    controller = EdgeController.objects.filter(product_id=product_id).first()
    if controller is None:
        raise ApiError(404, "edge_controller_not_found",
                       f"No EC with Product ID {product_id[:128]!r} in this tenant; check the Product ID.")
    return controller


class CertificateListView(APIView):
    """An EC's certificates, newest first: active, superseded and revoked."""

    authentication_classes = TENANT_ADMIN_AUTHENTICATION
    permission_classes = [IsTenantAdmin]

    @extend_schema(responses={200: s.CertificateSerializer(many=True)}, tags=["Director API"])
    def get(self, request, product_id):
        from pki.models import IssuedCertificate

        controller = _controller_or_404(product_id)
        certificates = (
            IssuedCertificate.objects.filter(edge_controller=controller)
            .select_related("issuing_ca", "renewal_of").order_by("-issued_at")[:100]
        )
        return Response(s.CertificateSerializer(certificates, many=True).data)


class RevokeCertificateView(APIView):
    """Revoke the EC's active certificate; the tunnel gateway drops its tunnel within a minute."""

    authentication_classes = TENANT_ADMIN_AUTHENTICATION
    permission_classes = [IsTenantAdmin]

    @extend_schema(request=s.RevokeSerializer, responses={200: s.CertificateSerializer}, tags=["Director API"])
    def post(self, request, product_id):
        from onboarding.services_portal import PortalError, revoke_active_certificate

        controller = _controller_or_404(product_id)
        serializer = s.RevokeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            certificate = revoke_active_certificate(controller, actor=tenant_actor(request),
                                                    reason=serializer.validated_data["reason"])
        except PortalError as error:
            raise ApiError(409 if error.code == "no_active_certificate" else 400, error.code, error.detail) from error
        return Response(s.CertificateSerializer(certificate).data)


class DecommissionView(APIView):
    """Take the EC out of service: revoke its certificate and reject its open requests."""

    authentication_classes = TENANT_ADMIN_AUTHENTICATION
    permission_classes = [IsTenantAdmin]

    @extend_schema(request=s.DecommissionSerializer, responses={200: s.EdgeControllerSerializer},
                   tags=["Director API"])
    def post(self, request, product_id):
        from onboarding.services_portal import PortalError, decommission_edge_controller

        controller = _controller_or_404(product_id)
        serializer = s.DecommissionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            controller = decommission_edge_controller(controller, actor=tenant_actor(request),
                                                      reason=serializer.validated_data["reason"])
        except PortalError as error:
            raise ApiError(409 if error.code == "already_decommissioned" else 400, error.code,
                           error.detail) from error
        return Response(s.EdgeControllerSerializer(controller).data)
