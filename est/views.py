"""EST (RFC 7030) endpoints on a Director tenant host, under ``/.well-known/est/``.

Successful responses are base64 DER certs-only PKCS#7, as RFC 7030 requires.
Errors are JSON ``{"code", "detail"}`` like the rest of the API. RFC 7030
section 4.2.3 expects a human-readable plain-text error body there, and the
``detail`` of the JSON is that text.
"""

from __future__ import annotations

import base64
import binascii
import logging

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from common.http import client_address
from config.api import ApiError
from est import services
from onboarding.services import OnboardRejected
from pki import crypto
from provisioning.serializers import ErrorSerializer
from tenants.services import tenant_access_key_matches

logger = logging.getLogger(__name__)

PKCS7_CONTENT_TYPE = "application/pkcs7-mime"
CERTS_ONLY_CONTENT_TYPE = "application/pkcs7-mime; smime-type=certs-only"

BASIC_AUTH = OpenApiParameter(
    "Authorization", str, OpenApiParameter.HEADER, required=True,
    description="Basic base64(<Product ID>:<tenant access key>)",
)
PKCS7_DESCRIPTION = "Base64 of a DER certs-only PKCS#7 (Content-Transfer-Encoding: base64)"


class IgnoreAcceptHeader(BaseContentNegotiation):
    """Always render errors as JSON.

    EST clients send ``Accept: application/pkcs7-mime``, which no DRF
    renderer offers. DRF would reject such a request with 406 before the view
    runs. Successful EST responses are built here directly and skip DRF's
    renderers anyway.
    """

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class EstView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    content_negotiation_class = IgnoreAcceptHeader


def pkcs7_response(certificates, content_type: str) -> HttpResponse:
    response = HttpResponse(services.certs_only_pkcs7(certificates), content_type=content_type)
    response["Content-Transfer-Encoding"] = "base64"
    return response


def _certificate_response(issued) -> HttpResponse:
    return pkcs7_response([crypto.load_certificate(issued.certificate_pem)], CERTS_ONLY_CONTENT_TYPE)


def _csr_pem(request) -> str:
    try:
        return services.csr_pem_from_body(request.body)
    except crypto.CSRError as error:
        raise ApiError(400, error.code, error.detail) from error


def basic_credentials(request) -> tuple[str, str] | None:
    """Return the (Product ID, tenant access key) of an ``Authorization: Basic`` header, or None.

    A Product ID contains a colon (``ModelNo:UUID``), which RFC 7617 does not
    allow in a user-id. So the user-id and password are split at the last
    colon, because a tenant access key never contains one.
    """
    scheme, _, encoded = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, colon, password = decoded.rpartition(":")
    if not colon or not username or not password:
        return None
    return username, password


def client_certificate_pem(request) -> str | None:
    """Return the TLS client certificate (PEM) from the request's ASGI TLS extension, or None.

    Only a TLS server fills that extension (``manage.py run_https``), from the
    TLS connection itself. No header is ever read, so a client of plain HTTP
    cannot claim a certificate.
    """
    scope = getattr(request, "scope", None) or {}
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    return chain[0] if chain else None


class CaCertsView(EstView):
    """``GET /.well-known/est/cacerts``: this tenant's trusted issuing CAs and the root CA."""

    @extend_schema(
        operation_id="est_cacerts",
        responses={(200, PKCS7_CONTENT_TYPE): OpenApiResponse(OpenApiTypes.STR, description=PKCS7_DESCRIPTION)},
        tags=["EST"],
    )
    def get(self, request):
        return pkcs7_response(services.ca_certificates(), PKCS7_CONTENT_TYPE)


class SimpleEnrollView(EstView):
    """``POST /.well-known/est/simpleenroll``: enroll with HTTP Basic (Product ID, tenant access key).

    The CSR becomes an ordinary onboard request that the tenant admin
    approves. Until the certificate is issued the response is 202 with
    Retry-After, and the EC sends the same CSR again.
    """

    @extend_schema(
        operation_id="est_simpleenroll",
        request={"application/pkcs10": OpenApiTypes.STR},
        parameters=[BASIC_AUTH],
        responses={
            (200, CERTS_ONLY_CONTENT_TYPE): OpenApiResponse(OpenApiTypes.STR, description=PKCS7_DESCRIPTION),
            (202, "application/json"): OpenApiResponse(
                inline_serializer("EstEnrollPending", {"request_id": serializers.UUIDField(),
                                                       "status": serializers.CharField()}),
                description="Waiting for the tenant admin; retry after Retry-After seconds",
            ),
            (400, "application/json"): OpenApiResponse(ErrorSerializer, description="Invalid CSR or Product ID"),
            (401, "application/json"): OpenApiResponse(ErrorSerializer, description="Wrong tenant access key"),
            (403, "application/json"): OpenApiResponse(
                ErrorSerializer, description="Request rejected or superseded, or its certificate revoked"),
        },
        tags=["EST"],
    )
    def post(self, request):
        credentials = basic_credentials(request)
        if credentials is None or not tenant_access_key_matches(request.tenant, credentials[1]):
            raise ApiError(401, "invalid_access_key",
                           "Missing or wrong credentials: send HTTP Basic with the Product ID as the username "
                           "and the tenant access key from the ZTP lookup as the password.",
                           headers={"WWW-Authenticate": 'Basic realm="est"'})
        product_id = credentials[0]
        csr_pem = _csr_pem(request)

        try:
            enrollment = services.enroll(product_id, csr_pem, source_address=client_address(request))
        except OnboardRejected as error:
            raise ApiError(400, error.code, error.detail) from error
        except services.EnrollmentRejected as error:
            logger.warning("EST enrollment of %s rejected: %s", product_id, error.code)
            raise ApiError(403, error.code, error.detail) from error

        if enrollment.certificate is None:
            onboard_request = enrollment.onboard_request
            return Response({"request_id": str(onboard_request.pk), "status": onboard_request.status}, status=202,
                            headers={"Retry-After": str(services.RETRY_AFTER_SECONDS)})
        return _certificate_response(enrollment.certificate)


class SimpleReenrollView(EstView):
    """``POST /.well-known/est/simplereenroll``: renew the certificate of the TLS client.

    Only the HTTPS server (``manage.py run_https``) receives client
    certificates. Over plain HTTP this endpoint always returns 401.
    """

    @extend_schema(
        operation_id="est_simplereenroll",
        request={"application/pkcs10": OpenApiTypes.STR},
        responses={
            (200, CERTS_ONLY_CONTENT_TYPE): OpenApiResponse(OpenApiTypes.STR, description=PKCS7_DESCRIPTION),
            (400, "application/json"): OpenApiResponse(ErrorSerializer, description="Invalid CSR"),
            (401, "application/json"): OpenApiResponse(ErrorSerializer, description="No TLS client certificate"),
            (403, "application/json"): OpenApiResponse(
                ErrorSerializer, description="Certificate of another tenant, revoked, expired or not an EC's"),
        },
        tags=["EST"],
    )
    def post(self, request):
        # A 401 ought to carry WWW-Authenticate (RFC 9110), but HTTP has no
        # challenge for TLS client certificates, so none is sent.
        certificate_pem = client_certificate_pem(request)
        if certificate_pem is None:
            raise ApiError(401, "client_certificate_required",
                           "No TLS client certificate: connect over HTTPS and present the EC's current "
                           "certificate with its issuing CA.")
        csr_pem = _csr_pem(request)

        try:
            issued = services.reenroll(certificate_pem, csr_pem, tenant=request.tenant,
                                       source_address=client_address(request))
        except services.EnrollmentRejected as error:
            logger.warning("EST re-enrollment rejected: %s", error.detail)
            raise ApiError(400 if error.code.startswith("csr_") else 403, error.code, error.detail) from error
        return _certificate_response(issued)
