"""EC HTTP API on the Provision Server host: the ZTP lookup."""

from __future__ import annotations

import logging

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from common.http import bearer_token, client_address
from config.api import ApiError
from provisioning.serializers import (
    DeviceProofErrorSerializer,
    ErrorSerializer,
    LookupRequestSerializer,
    LookupResponseSerializer,
    ReportRequestSerializer,
    ReportResponseSerializer,
)
from provisioning.services.access_keys import AccessKeyRejected, authenticate_access_key
from provisioning.services.lookup import LookupFailed, lookup_product
from provisioning.services.reports import record_onboarded
from provisioning.throttles import AccessKeyThrottle, ClientAddressThrottle, ProductThrottle

logger = logging.getLogger(__name__)

ACCESS_KEY_DETAILS = {
    "missing": "Missing provisioning access key: send 'Authorization: Bearer <access key>'.",
    "unknown": "Unknown provisioning access key; check the key in the device firmware.",
    "revoked": "The provisioning access key was revoked; the device needs firmware with a current key.",
    "expired": "The provisioning access key has expired; the device needs firmware with a current key.",
}


# The Authorization header of every EC endpoint on the Provision Server host.
PROVISIONING_KEY_HEADER = OpenApiParameter("Authorization", str, OpenApiParameter.HEADER,
                                           description="Bearer <provisioning access key>", required=True)


def provisioning_key_of(request):
    """Return the usable provisioning access key of ``request`` or raise a 401 ApiError."""
    try:
        return authenticate_access_key(bearer_token(request))
    except AccessKeyRejected as error:
        raise ApiError(401, f"access_key_{error.reason}", ACCESS_KEY_DETAILS[error.reason],
                       headers={"WWW-Authenticate": 'Bearer realm="ztp"'}) from error


class ZtpLookupView(APIView):
    """``POST /api/v1/ztp/lookup``: where an EC finds its Director tenant."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ClientAddressThrottle, AccessKeyThrottle]

    @extend_schema(
        operation_id="ztp_lookup",
        request=LookupRequestSerializer,
        parameters=[PROVISIONING_KEY_HEADER],
        responses={
            200: LookupResponseSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Malformed Product ID or body"),
            401: OpenApiResponse(DeviceProofErrorSerializer, description=(
                "Missing, unknown, revoked or expired access key; or, for a product with an imported device "
                "credential, a missing or bad proof (codes device_proof_required, device_proof_invalid, "
                "device_proof_expired, device_proof_replayed), with a new challenge to sign")),
            403: OpenApiResponse(ErrorSerializer, description="Product disabled or decommissioned"),
            404: OpenApiResponse(ErrorSerializer, description="Unknown Product ID"),
            409: OpenApiResponse(ErrorSerializer, description="Not claimed or not mapped yet; see Retry-After"),
            429: OpenApiResponse(ErrorSerializer, description="Throttled; see Retry-After"),
        },
        tags=["EC API"],
    )
    def post(self, request):
        # The key is checked before the body so that nothing about products
        # is revealed to a caller without a valid key.
        access_key = provisioning_key_of(request)

        product_throttle = ProductThrottle()
        if not product_throttle.allow_request(request, self):
            self.throttled(request, product_throttle.wait())

        serializer = LookupRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            result = lookup_product(
                serializer.validated_data["product_id"],
                access_key=access_key,
                facts=serializer.validated_data["facts"],
                source_address=client_address(request),
                proof=serializer.validated_data.get("proof"),
            )
        except LookupFailed as error:
            headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
            raise ApiError(error.status, error.code, error.detail, headers=headers, extra=error.extra) from error
        body = {"product_id": result.product_id, "director_url": result.director_url, "access_key": result.access_key}
        if result.lookup_proof:
            body["lookup_proof"] = result.lookup_proof
        return Response(body)


class ZtpReportView(APIView):
    """``POST /api/v1/ztp/report``: an EC reports that its management tunnel is up."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ClientAddressThrottle, AccessKeyThrottle]

    @extend_schema(
        operation_id="ztp_report",
        request=ReportRequestSerializer,
        parameters=[PROVISIONING_KEY_HEADER],
        responses={
            200: ReportResponseSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Malformed body"),
            401: OpenApiResponse(ErrorSerializer, description="Missing, unknown, revoked or expired access key"),
            404: OpenApiResponse(ErrorSerializer, description="Unknown Product ID"),
            409: OpenApiResponse(ErrorSerializer, description="Not mapped to that Director"),
        },
        tags=["EC API"],
    )
    def post(self, request):
        access_key = provisioning_key_of(request)
        serializer = ReportRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            product = record_onboarded(data["product_id"], access_key=access_key, director_url=data["director_url"],
                                       certificate_serial=data["certificate_serial"],
                                       source_address=client_address(request))
        except LookupFailed as error:
            raise ApiError(error.status, error.code, error.detail) from error
        return Response({"product_id": product.product_id, "status": "onboarded",
                         "onboarded_at": product.onboarded_at})
