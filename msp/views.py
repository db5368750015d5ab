"""MSP REST API (Provision Server host) and the vendor's automation endpoints.

Every MSP endpoint scopes its data through :func:`msp.authentication.msp_of`.
An object of another MSP gets the same response as one that does not exist.
"""

from __future__ import annotations

import io
import logging

from django.conf import settings
from django.db.models import Q
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import authentication, generics, parsers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import ApiError
from msp import serializers as s
from msp.authentication import IsMSP, IsVendorStaff, MSPTokenAuthentication, actor_of, msp_of
from msp.management_urls import InvalidManagementUrl
from msp.models import MSP, TenantRegistration
from msp.services import accounts, products, registrations
from provisioning.models import Product
from provisioning.services.importing import ImportFileError, ProductIdColumn

logger = logging.getLogger(__name__)

MSP_AUTHENTICATION = [MSPTokenAuthentication, authentication.SessionAuthentication,
                      authentication.BasicAuthentication]


class CsvParser(parsers.BaseParser):
    """Accepts a ``text/csv`` body: one Product ID per line, or a ``product_id`` column."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        return {"csv": stream.read()}


def _items_from_request(request) -> list[tuple[int, str]]:
    """Return (position, raw Product ID) pairs from a JSON list or a CSV body."""
    if isinstance(request.data, dict) and "csv" in request.data and isinstance(request.data["csv"], bytes):
        try:
            return list(ProductIdColumn(io.BytesIO(request.data["csv"])))
        except ImportFileError as error:
            raise ApiError(400, "unreadable_csv", f"The CSV body cannot be read: {error}") from error
    serializer = s.ProductIdListSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return products.numbered(serializer.validated_data["product_ids"])


class MSPView(APIView):
    authentication_classes = MSP_AUTHENTICATION
    permission_classes = [IsMSP]
    parser_classes = [parsers.JSONParser, CsvParser]


class ProductCursorPagination(CursorPagination):
    # Cursor paging needs no COUNT(*), which matters at millions of products.
    ordering = "pk"
    page_size = 500
    page_size_query_param = "page_size"
    max_page_size = 5000


class ProductListView(generics.ListAPIView):
    """Products allocated to the caller's MSP, with their claim, mapping and ZTP status."""

    authentication_classes = MSP_AUTHENTICATION
    permission_classes = [IsMSP]
    serializer_class = s.ProductSerializer
    pagination_class = ProductCursorPagination

    def get_queryset(self):
        queryset = Product.objects.filter(msp=msp_of(self.request))
        claimed = self.request.query_params.get("claimed")
        if claimed in ("true", "false"):
            queryset = queryset.filter(claimed_at__isnull=claimed == "false")
        return queryset


@extend_schema(request=s.ProductIdListSerializer, responses={200: s.BulkResultSerializer}, tags=["MSP API"])
class ClaimProductsView(MSPView):
    """Claim products allocated to the caller's MSP (JSON list or ``text/csv`` body)."""

    def post(self, request):
        result = products.claim_products(msp_of(request), _items_from_request(request), actor=actor_of(request))
        return Response(result.as_dict())


def _own_registration(request, registration_id) -> TenantRegistration:
    registration = TenantRegistration.objects.filter(pk=registration_id, msp=msp_of(request)).first()
    if registration is None:
        raise ApiError(404, "tenant_registration_not_found",
                       f"Tenant registration {registration_id} not found among your registrations.")
    return registration


@extend_schema(request=s.MapProductsSerializer, responses={200: s.BulkResultSerializer}, tags=["MSP API"])
class MapProductsView(MSPView):
    """Map claimed products to one of the caller's tenant registrations."""

    parser_classes = [parsers.JSONParser]

    def post(self, request):
        serializer = s.MapProductsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        registration = _own_registration(request, serializer.validated_data["tenant_registration"])
        result = products.map_products_to_tenant(
            msp_of(request), registration, products.numbered(serializer.validated_data["product_ids"]),
            actor=actor_of(request),
        )
        return Response(result.as_dict())


@extend_schema(request=s.ProductIdListSerializer, responses={200: s.BulkResultSerializer}, tags=["MSP API"])
class UnmapProductsView(MSPView):
    def post(self, request):
        result = products.unmap_products(msp_of(request), _items_from_request(request), actor=actor_of(request))
        return Response(result.as_dict())


def _registration_error(error) -> ApiError:
    if isinstance(error, InvalidManagementUrl):
        return ApiError(400, "invalid_management_url", str(error), extra={"errors": {"management_url": [str(error)]}})
    extra = {"errors": {error.field: [error.detail]}} if error.field else {}
    status_code = 409 if error.code.startswith("duplicate") else 400
    return ApiError(status_code, error.code, error.detail, extra=extra)


class TenantRegistrationListView(generics.ListCreateAPIView):
    """The caller's tenant registrations; POST registers a tenant URL and access key."""

    authentication_classes = MSP_AUTHENTICATION
    permission_classes = [IsMSP]
    serializer_class = s.TenantRegistrationSerializer
    pagination_class = None

    def get_queryset(self):
        return TenantRegistration.objects.filter(msp=msp_of(self.request)).order_by("name")

    def perform_create(self, serializer):
        data = serializer.validated_data
        try:
            serializer.instance = registrations.register_tenant(
                msp_of(self.request), name=data["name"], management_url=data["management_url"],
                access_key=data["access_key"], actor=actor_of(self.request),
            )
        except (InvalidManagementUrl, registrations.RegistrationRejected) as error:
            raise _registration_error(error) from error


class TenantRegistrationDetailView(MSPView):
    @extend_schema(responses={200: s.TenantRegistrationSerializer}, tags=["MSP API"])
    def get(self, request, pk: int):
        return Response(s.TenantRegistrationSerializer(_own_registration(request, pk)).data)

    @extend_schema(request=s.TenantRegistrationKeySerializer, responses={200: s.TenantRegistrationSerializer},
                   tags=["MSP API"])
    def patch(self, request, pk: int):
        """Replace the stored access key (after the key was rotated at the Director)."""
        registration = _own_registration(request, pk)
        serializer = s.TenantRegistrationKeySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            registrations.update_tenant_access_key(registration, serializer.validated_data["access_key"],
                                                   actor=actor_of(request))
        except registrations.RegistrationRejected as error:
            raise _registration_error(error) from error
        return Response(s.TenantRegistrationSerializer(registration).data)


def _tenant_error(error) -> ApiError:
    extra = {"errors": {error.field: [error.detail]}} if error.field else {}
    return ApiError(409 if error.code.startswith("duplicate") else 400, error.code, error.detail, extra=extra)


class HostedTenantView(MSPView):
    """Create a Director tenant hosted by this deployment (schema, domain, access key, issuing CA)."""

    parser_classes = [parsers.JSONParser]

    @extend_schema(request=s.HostedTenantSerializer, responses={201: OpenApiResponse(description="Created")},
                   tags=["MSP API"])
    def post(self, request):
        from tenants.services import (
            TenantRejected,
            create_hosted_tenant,
            create_tenant_admin,
            management_url_for,
            validate_new_tenant,
        )

        if not settings.DIRECTOR_ROLE:
            raise ApiError(404, "director_role_disabled",
                           "This deployment hosts no Director tenants; register a tenant of your own Director.")
        serializer = s.HostedTenantSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        msp = msp_of(request)
        actor = actor_of(request)
        url = management_url_for(data["domain"].strip().lower())
        try:
            validate_new_tenant(data["schema_name"].strip().lower(), data["domain"].strip().lower())
        except TenantRejected as error:
            raise _tenant_error(error) from error
        if data["register"] and TenantRegistration.objects.filter(
            Q(msp=msp, name=data["name"].strip()) | Q(management_url=url)
        ).exists():
            # Checked before the schema exists: afterwards the access key,
            # shown only once, would be lost with the failed registration.
            raise ApiError(409, "duplicate_registration",
                           f"A tenant registration named {data['name']!r} or at {url} already exists; "
                           "pick another name or domain.")
        try:
            tenant, access_key = create_hosted_tenant(
                name=data["name"], schema_name=data["schema_name"], domain=data["domain"], actor=actor,
                owner_msp=msp,
            )
        except TenantRejected as error:
            raise _tenant_error(error) from error
        if data.get("admin_username") and data.get("admin_password"):
            create_tenant_admin(tenant, data["admin_username"], data["admin_password"], actor=actor)

        body = {"schema_name": tenant.schema_name, "domain": data["domain"].lower(), "management_url": url,
                "access_key": access_key, "tenant_registration": None}
        if data["register"]:
            registration = registrations.register_tenant(msp, name=data["name"], management_url=url,
                                                         access_key=access_key, actor=actor)
            body["tenant_registration"] = registration.pk
        return Response(body, status=status.HTTP_201_CREATED)


class ApiTokenView(APIView):
    """Create an MSP API token; the token is in this response only."""

    authentication_classes = [authentication.SessionAuthentication, authentication.BasicAuthentication]
    permission_classes = [IsMSP]

    @extend_schema(request=s.ApiTokenRequestSerializer, responses={201: OpenApiResponse(description="Token created")},
                   tags=["MSP API"])
    def post(self, request):
        serializer = s.ApiTokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        name = serializer.validated_data["name"].strip() or "api"
        token, plaintext = accounts.create_api_token(msp_of(request), name, actor=actor_of(request))
        return Response({"key_id": token.key_id, "name": token.name, "token": plaintext},
                        status=status.HTTP_201_CREATED)


# Vendor staff endpoints (Django staff users, HTTP Basic or session).


class VendorMSPListView(generics.ListCreateAPIView):
    authentication_classes = [authentication.SessionAuthentication, authentication.BasicAuthentication]
    permission_classes = [IsVendorStaff]
    serializer_class = s.MSPSerializer
    queryset = MSP.objects.order_by("name")
    pagination_class = None

    def perform_create(self, serializer):
        data = serializer.validated_data
        try:
            serializer.instance = accounts.create_msp(data["name"], slug=data.get("slug"),
                                                      actor=actor_of(self.request))
        except accounts.MSPRejected as error:
            status_code = 409 if error.code.startswith("duplicate") else 400
            raise ApiError(status_code, error.code, error.detail,
                           extra={"errors": {error.field: [error.detail]}}) from error


@extend_schema(request=s.ProductIdListSerializer, responses={200: s.BulkResultSerializer}, tags=["Vendor API"])
class VendorAllocateView(APIView):
    """Allocate products to an MSP (JSON list or ``text/csv`` body)."""

    authentication_classes = [authentication.SessionAuthentication, authentication.BasicAuthentication]
    permission_classes = [IsVendorStaff]
    parser_classes = [parsers.JSONParser, CsvParser]

    def post(self, request, slug: str):
        msp = MSP.objects.filter(slug=slug).first()
        if msp is None:
            raise ApiError(404, "msp_not_found", f"MSP {slug!r} not found; list MSPs at /api/v1/vendor/msps.")
        result = products.allocate_products(msp, _items_from_request(request), actor=actor_of(request))
        return Response(result.as_dict())
