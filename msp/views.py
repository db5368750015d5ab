"""MSP REST API (Provision Server host) and the vendor's automation endpoints.

Every MSP endpoint scopes its data through :func:`msp.authentication.msp_of`.
An object of another MSP gets the same response as one that does not exist.
"""

from __future__ import annotations

import io
import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import authentication, generics, parsers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import ApiError
from config.parsers import JSONParser
from msp import serializers as s
from msp.authentication import IsMSP, IsVendorStaff, MSPTokenAuthentication, actor_of, msp_of
from msp.management_urls import InvalidManagementUrl
from msp.models import MSP, TenantRegistration
from msp.services import accounts, hosted_tenants, products, registrations
from msp.services.routes import RouteExplanation, explain_route
from provisioning.models import LookupEvent, Product
from provisioning.product_ids import InvalidProductId, parse_product_id
from provisioning.serializers import ErrorSerializer
from provisioning.services.importing import ImportFileError, ProductIdColumn

logger = logging.getLogger(__name__)

MSP_AUTHENTICATION = [MSPTokenAuthentication, authentication.SessionAuthentication,
                      authentication.BasicAuthentication]
# An MSP token is recognised here too, so it is refused as "not vendor staff"
# (403) instead of "no credentials"; Basic comes first so a wrong password is 401.
VENDOR_AUTHENTICATION = [authentication.BasicAuthentication, authentication.SessionAuthentication,
                         MSPTokenAuthentication]


class CsvParser(parsers.BaseParser):
    """Accepts a ``text/csv`` body: one Product ID per line, or a ``product_id`` column."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        # DRF hands over the raw request stream, which Django checks against
        # DATA_UPLOAD_MAX_MEMORY_SIZE only when request.body is read, so the limit is applied here.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read(limit + 1)
        if len(body) > limit:
            raise RequestDataTooBig(f"The CSV body exceeds the limit of {limit} bytes.")
        return {"csv": body}


def _items_from_request(request) -> list[tuple[int, str]]:
    """Return (position, raw Product ID) pairs from a JSON list or a CSV body."""
    if request.content_type.partition(";")[0].strip().lower() == CsvParser.media_type:
        # An empty body is never parsed, so request.data is then an empty dict.
        body = request.data.get("csv", b"") if isinstance(request.data, dict) else b""
        try:
            items = list(ProductIdColumn(io.BytesIO(body)))
        except ImportFileError as error:
            raise ApiError(400, "unreadable_csv", f"The CSV body cannot be read: {error}") from error
        if not items:
            raise ApiError(400, "empty_csv", "The CSV body contains no Product IDs: every line is blank or a "
                                             "header. Send one Product ID per line.")
        return items
    serializer = s.ProductIdListSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return products.numbered(serializer.validated_data["product_ids"])


class MSPView(APIView):
    authentication_classes = MSP_AUTHENTICATION
    permission_classes = [IsMSP]
    parser_classes = [JSONParser, CsvParser]


class ProductCursorPagination(CursorPagination):
    # Cursor paging needs no COUNT(*), which matters at millions of products.
    ordering = "pk"
    page_size = 500
    page_size_query_param = "page_size"
    max_page_size = 5000


@extend_schema_view(get=extend_schema(tags=["MSP API"]))
class ProductListView(generics.ListAPIView):
    """Products allocated to the caller's MSP, with their claim, mapping and ZTP status."""

    authentication_classes = MSP_AUTHENTICATION
    permission_classes = [IsMSP]
    serializer_class = s.ProductSerializer
    pagination_class = ProductCursorPagination

    def get_queryset(self):
        queryset = Product.objects.filter(msp=msp_of(self.request))
        claimed = self.request.query_params.get("claimed")
        if claimed is not None:
            if claimed not in ("true", "false"):
                raise ApiError(400, "invalid_filter", f"claimed={claimed!r} must be true or false.")
            queryset = queryset.filter(claimed_at__isnull=claimed == "false")
        return queryset


def _canonical_product_id(raw: str) -> str:
    try:
        return str(parse_product_id(raw))
    except InvalidProductId as error:
        raise ApiError(400, "invalid_product_id", f"{error}; use the form EC100:<uuid>.") from error


def _product_not_found(product_id: str) -> ApiError:
    return ApiError(404, "product_not_found", f"Product ID {product_id} not found among your products.")


def _own_product(request, raw_product_id: str) -> Product:
    """Return the caller's product; another MSP's product is reported exactly like a missing one."""
    product_id = _canonical_product_id(raw_product_id)
    product = (
        Product.objects.select_related("msp", "tenant_registration")
        .filter(product_id=product_id, msp=msp_of(request))
        .first()
    )
    if product is None:
        raise _product_not_found(product_id)
    return product


def _route_body(explanation: RouteExplanation) -> dict:
    decision = explanation.decision
    registration = explanation.product.tenant_registration
    return {
        "product_id": explanation.product.product_id,
        "result": {"status": decision.status, "code": decision.code, "detail": decision.detail,
                   "retry_after": decision.retry_after},
        "director_url": explanation.director_url,
        "tenant_registration": {"id": registration.pk, "name": registration.name} if registration else None,
        "reasons": [{"code": reason.code, "detail": reason.detail, "at": reason.at}
                    for reason in explanation.reasons],
    }


PRODUCT_NOT_FOUND = OpenApiResponse(ErrorSerializer, description="product_not_found: unknown or not yours")
INVALID_PRODUCT_ID = OpenApiResponse(ErrorSerializer, description="invalid_product_id")


class ProductRouteView(MSPView):
    """The Director that one of the caller's products would get from a lookup now, and the reasons."""

    @extend_schema(responses={200: s.RouteSerializer, 400: INVALID_PRODUCT_ID, 404: PRODUCT_NOT_FOUND},
                   tags=["MSP API"])
    def get(self, request, product_id: str):
        product = _own_product(request, product_id)
        explanation = explain_route(product, history_since=product.allocated_at)
        return Response(s.RouteSerializer(_route_body(explanation)).data)


class LookupEventCursorPagination(CursorPagination):
    ordering = ("-at", "-id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


@extend_schema(responses={200: s.LookupEventSerializer(many=True), 400: INVALID_PRODUCT_ID, 404: PRODUCT_NOT_FOUND},
               tags=["MSP API"])
class ProductLookupsView(generics.ListAPIView):
    """Recorded ZTP lookups of one of the caller's products, newest first.

    At most one lookup per outcome a minute is recorded, and only lookups
    since the product was allocated to the caller's MSP are listed.
    """

    authentication_classes = MSP_AUTHENTICATION
    permission_classes = [IsMSP]
    serializer_class = s.LookupEventSerializer
    pagination_class = LookupEventCursorPagination

    def get_queryset(self):
        product = _own_product(self.request, self.kwargs["product_id"])
        events = LookupEvent.objects.filter(product_id=product.product_id)
        if product.allocated_at is not None:
            events = events.filter(at__gte=product.allocated_at)
        return events


@extend_schema(request=s.ProductIdListSerializer, responses={200: s.BulkResultSerializer}, tags=["MSP API"])
class ClaimProductsView(MSPView):
    """Claim products allocated to the caller's MSP (JSON list or ``text/csv`` body)."""

    def post(self, request):
        result = products.claim_products(msp_of(request), _items_from_request(request), actor=actor_of(request))
        return Response(result.as_dict())


def _registration_not_found(registration_id) -> ApiError:
    return ApiError(404, "tenant_registration_not_found",
                    f"Tenant registration {registration_id} not found among your registrations.")


def _own_registration(request, registration_id) -> TenantRegistration:
    registration = TenantRegistration.objects.filter(pk=registration_id, msp=msp_of(request)).first()
    if registration is None:
        raise _registration_not_found(registration_id)
    return registration


@extend_schema(request=s.MapProductsSerializer, responses={200: s.BulkResultSerializer}, tags=["MSP API"])
class MapProductsView(MSPView):
    """Map claimed products to one of the caller's tenant registrations."""

    parser_classes = [JSONParser]

    def post(self, request):
        serializer = s.MapProductsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        registration = _own_registration(request, serializer.validated_data["tenant_registration"])
        try:
            result = products.map_products_to_tenant(
                msp_of(request), registration, products.numbered(serializer.validated_data["product_ids"]),
                actor=actor_of(request),
            )
        except TenantRegistration.DoesNotExist as error:
            raise _registration_not_found(registration.pk) from error
        return Response(result.as_dict())


@extend_schema(request=s.ProductIdListSerializer, responses={200: s.BulkResultSerializer}, tags=["MSP API"])
class UnmapProductsView(MSPView):
    def post(self, request):
        result = products.unmap_products(msp_of(request), _items_from_request(request), actor=actor_of(request))
        return Response(result.as_dict())


# Rejections that depend on the registration's state, not on the request body.
REGISTRATION_CONFLICTS = {"not_hosted_here", "tenant_not_owned", "registration_in_use"}


def _registration_error(error) -> ApiError:
    if isinstance(error, InvalidManagementUrl):
        return ApiError(400, "invalid_management_url", str(error), extra={"errors": {"management_url": [str(error)]}})
    extra = {"errors": {error.field: [error.detail]}} if error.field else {}
    conflict = error.code.startswith("duplicate") or error.code in REGISTRATION_CONFLICTS
    return ApiError(409 if conflict else 400, error.code, error.detail, extra=extra)


@extend_schema_view(get=extend_schema(tags=["MSP API"]), post=extend_schema(tags=["MSP API"]))
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

    @extend_schema(request=s.TenantRegistrationUpdateSerializer, responses={200: s.TenantRegistrationSerializer},
                   tags=["MSP API"])
    def patch(self, request, pk: int):
        """Change the name, management URL or stored access key (after a key change at the Director)."""
        registration = _own_registration(request, pk)
        serializer = s.TenantRegistrationUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            registrations.update_tenant_registration(registration, actor=actor_of(request),
                                                     **serializer.validated_data)
        except (InvalidManagementUrl, registrations.RegistrationRejected) as error:
            raise _registration_error(error) from error
        return Response(s.TenantRegistrationSerializer(registration).data)

    @extend_schema(
        responses={
            204: OpenApiResponse(description="Deleted"),
            404: OpenApiResponse(ErrorSerializer, description="Not among your registrations"),
            409: OpenApiResponse(ErrorSerializer, description="registration_in_use: products are mapped to it"),
        },
        tags=["MSP API"],
    )
    def delete(self, request, pk: int):
        """Delete a registration that no product is mapped to; the tenant itself is untouched."""
        registration = _own_registration(request, pk)
        try:
            registrations.delete_tenant_registration(registration, actor=actor_of(request))
        except registrations.RegistrationRejected as error:
            raise _registration_error(error) from error
        except TenantRegistration.DoesNotExist as error:
            raise _registration_not_found(pk) from error
        return Response(status=status.HTTP_204_NO_CONTENT)


class TenantRegistrationRotateView(MSPView):
    """Rotate the access key of a tenant that this deployment hosts for the caller's MSP."""

    parser_classes = [JSONParser]

    @extend_schema(
        request=s.RotateKeyRequestSerializer,
        responses={
            200: s.RotatedKeySerializer,
            404: OpenApiResponse(ErrorSerializer, description="Not among your registrations"),
            409: OpenApiResponse(ErrorSerializer, description="not_hosted_here: rotate at the tenant's Director "
                                                              "and PATCH the new key; tenant_not_owned"),
        },
        tags=["MSP API"],
    )
    def post(self, request, pk: int):
        registration = _own_registration(request, pk)
        # An empty body parses to {}, but a JSON null or list must fail validation rather than rotate with defaults.
        serializer = s.RotateKeyRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            rotated = registrations.rotate_registration_access_key(
                registration, actor=actor_of(request), grace_seconds=serializer.validated_data.get("grace_seconds"),
            )
        except registrations.RegistrationRejected as error:
            raise _registration_error(error) from error
        body = {
            "tenant_registration": rotated.registration.pk,
            "management_url": rotated.registration.management_url,
            "key_id": rotated.key_id,
            "access_key": rotated.access_key,
            "previous_key_valid_until": rotated.previous_key_valid_until,
        }
        return Response(s.RotatedKeySerializer(body).data)


def _tenant_error(error) -> ApiError:
    extra = {"errors": {error.field: [error.detail]}} if error.field else {}
    return ApiError(409 if error.code.startswith("duplicate") else 400, error.code, error.detail, extra=extra)


class HostedTenantView(MSPView):
    """Create a Director tenant hosted by this deployment (schema, domain, access key, issuing CA)."""

    parser_classes = [JSONParser]

    @extend_schema(request=s.HostedTenantSerializer, responses={201: OpenApiResponse(description="Created")},
                   tags=["MSP API"])
    def post(self, request):
        from tenants.services import TenantRejected

        if not settings.DIRECTOR_ROLE:
            raise ApiError(404, "director_role_disabled",
                           "This deployment hosts no Director tenants; register a tenant of your own Director.")
        serializer = s.HostedTenantSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            created = hosted_tenants.create_and_register_hosted_tenant(
                msp_of(request), name=data["name"], schema_name=data["schema_name"], domain=data["domain"],
                register=data["register"], admin_username=data.get("admin_username"),
                admin_password=data.get("admin_password"), actor=actor_of(request),
            )
        except TenantRejected as error:
            raise _tenant_error(error) from error
        except registrations.RegistrationRejected as error:
            raise _registration_error(error) from error

        body = {"schema_name": created.tenant.schema_name, "domain": data["domain"].strip().lower(),
                "management_url": created.management_url, "access_key": created.access_key,
                "tenant_registration": created.registration.pk if created.registration else None}
        if created.registration_error:
            body["registration_error"] = created.registration_error
        return Response(body, status=status.HTTP_201_CREATED)


class HostedTenantDetailView(MSPView):
    """Delete a Director tenant that this deployment hosts for the calling MSP."""

    @extend_schema(
        responses={
            200: OpenApiResponse(description="Deleted; the body lists the policy and what was cleared"),
            404: OpenApiResponse(ErrorSerializer, description="Not among your hosted tenants"),
        },
        tags=["MSP API"],
    )
    def delete(self, request, schema_name: str):
        from tenants.models import Tenant

        try:
            deleted = hosted_tenants.delete_owned_hosted_tenant(msp_of(request), schema_name,
                                                                actor=actor_of(request))
        except Tenant.DoesNotExist as error:
            raise ApiError(404, "hosted_tenant_not_found",
                           f"You have no hosted tenant with schema name {schema_name!r}.") from error
        return Response({"schema_name": deleted.schema_name, "policy": deleted.policy,
                         "archived_schema": deleted.archived_schema,
                         "tenant_registrations_deleted": deleted.registrations_deleted,
                         "products_unmapped": deleted.products_unmapped})


class ApiTokenView(APIView):
    """Create an MSP API token; the token is in this response only."""

    # Only a signed-in MSP user, never a token, may create tokens.
    authentication_classes = [authentication.BasicAuthentication, authentication.SessionAuthentication]
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


@extend_schema_view(get=extend_schema(tags=["Vendor API"]), post=extend_schema(tags=["Vendor API"]))
class VendorMSPListView(generics.ListCreateAPIView):
    authentication_classes = VENDOR_AUTHENTICATION
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

    authentication_classes = VENDOR_AUTHENTICATION
    permission_classes = [IsVendorStaff]
    parser_classes = [JSONParser, CsvParser]

    def post(self, request, slug: str):
        msp = MSP.objects.filter(slug=slug).first()
        if msp is None:
            raise ApiError(404, "msp_not_found", f"MSP {slug!r} not found; list MSPs at /api/v1/vendor/msps.")
        result = products.allocate_products(msp, _items_from_request(request), actor=actor_of(request))
        return Response(result.as_dict())


class VendorProductRouteView(APIView):
    """The Director that any product would get from a lookup now, the reasons, and the product's MSP."""

    authentication_classes = VENDOR_AUTHENTICATION
    permission_classes = [IsVendorStaff]

    @extend_schema(responses={200: s.VendorRouteSerializer, 400: INVALID_PRODUCT_ID,
                              404: OpenApiResponse(ErrorSerializer, description="product_not_found")},
                   tags=["Vendor API"])
    def get(self, request, product_id: str):
        canonical = _canonical_product_id(product_id)
        product = Product.objects.select_related("msp", "tenant_registration").filter(product_id=canonical).first()
        if product is None:
            raise ApiError(404, "product_not_found", f"Product ID {canonical} is not known; import it first.")
        body = _route_body(explain_route(product))
        body["msp"] = {"slug": product.msp.slug, "name": product.msp.name} if product.msp else None
        return Response(s.VendorRouteSerializer(body).data)


@extend_schema(responses={200: s.LookupEventSerializer(many=True), 400: INVALID_PRODUCT_ID,
                          404: OpenApiResponse(ErrorSerializer, description="product_not_found")},
               tags=["Vendor API"])
class VendorProductLookupsView(generics.ListAPIView):
    """Recorded ZTP lookups of any Product ID, newest first, including IDs that were never imported."""

    authentication_classes = VENDOR_AUTHENTICATION
    permission_classes = [IsVendorStaff]
    serializer_class = s.LookupEventSerializer
    pagination_class = LookupEventCursorPagination

    def get_queryset(self):
        canonical = _canonical_product_id(self.kwargs["product_id"])
        events = LookupEvent.objects.filter(product_id=canonical)
        if not Product.objects.filter(product_id=canonical).exists() and not events.exists():
            raise ApiError(404, "product_not_found",
                           f"Product ID {canonical} is not known and was never looked up.")
        return events
