"""The tenant admin's configuration API under ``/api/v1/director/``: policies, pushes, per-EC configuration."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import ApiError
from onboarding.views import TENANT_ADMIN_AUTHENTICATION, IsTenantAdmin, _controller_or_404, tenant_actor
from policies import serializers as s
from policies import services
from policies.jobs import start_push_job
from policies.models import Policy, PushJob
from policies.services import PolicyError

TAGS = ["Director API"]

# HTTP status of each PolicyError code that is not a plain 400.
_STATUS_BY_CODE = {"policy_exists": 409, "not_on_demand": 409, "tags_need_auto": 409}


def _api_error(error: PolicyError) -> ApiError:
    extra = {"errors": error.errors} if error.errors else None
    return ApiError(_STATUS_BY_CODE.get(error.code, 400), error.code, error.detail, extra=extra)


def _policy_or_404(policy_id: int) -> Policy:
    policy = Policy.objects.filter(pk=policy_id).first()
    if policy is None:
        raise ApiError(404, "policy_not_found", f"Policy {policy_id} not found in this tenant; list "
                                                "/api/v1/director/policies for the ids.")
    return policy


def _valid(serializer_class, request):
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class _TenantAdminView(APIView):
    authentication_classes = TENANT_ADMIN_AUTHENTICATION
    permission_classes = [IsTenantAdmin]


class PolicyPagination(CursorPagination):
    ordering = ("name", "id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class PolicyListView(_TenantAdminView):
    @extend_schema(responses={200: s.PolicySerializer(many=True)}, tags=TAGS)
    def get(self, request):
        paginator = PolicyPagination()
        page = paginator.paginate_queryset(Policy.objects.prefetch_related("tags"), request, view=self)
        return paginator.get_paginated_response(s.PolicySerializer(page, many=True).data)

    @extend_schema(request=s.PolicyCreateSerializer, responses={201: s.PolicySerializer}, tags=TAGS)
    def post(self, request):
        data = _valid(s.PolicyCreateSerializer, request)
        try:
            policy = services.create_policy(actor=tenant_actor(request), **data)
        except PolicyError as error:
            raise _api_error(error) from error
        return Response(s.PolicySerializer(policy).data, status=201)


class PolicyDetailView(_TenantAdminView):
    @extend_schema(responses={200: s.PolicySerializer}, tags=TAGS)
    def get(self, request, policy_id):
        return Response(s.PolicySerializer(_policy_or_404(policy_id)).data)

    @extend_schema(request=s.PolicyUpdateSerializer, responses={200: s.PolicySerializer}, tags=TAGS)
    def patch(self, request, policy_id):
        policy = _policy_or_404(policy_id)
        data = _valid(s.PolicyUpdateSerializer, request)
        try:
            policy = services.update_policy(policy, actor=tenant_actor(request), **data)
        except PolicyError as error:
            raise _api_error(error) from error
        return Response(s.PolicySerializer(policy).data)

    @extend_schema(responses={204: None}, tags=TAGS)
    def delete(self, request, policy_id):
        services.delete_policy(_policy_or_404(policy_id), actor=tenant_actor(request))
        return Response(status=204)


class PolicyVersionsView(_TenantAdminView):
    """A policy's versions, oldest first; POST stores a new body as the next version."""

    @extend_schema(responses={200: s.PolicyVersionSerializer(many=True)}, tags=TAGS)
    def get(self, request, policy_id):
        policy = _policy_or_404(policy_id)
        return Response(s.PolicyVersionSerializer(policy.versions.order_by("number"), many=True).data)

    @extend_schema(request=s.ConfigBodySerializer, responses={201: s.PolicyVersionSerializer}, tags=TAGS)
    def post(self, request, policy_id):
        policy = _policy_or_404(policy_id)
        data = _valid(s.ConfigBodySerializer, request)
        try:
            version = services.add_policy_version(policy, data["body"], actor=tenant_actor(request))
        except PolicyError as error:
            raise _api_error(error) from error
        return Response(s.PolicyVersionSerializer(version).data, status=201)


class PolicyTagsView(_TenantAdminView):
    """Set the tags of an auto policy; ECs with any of them get the policy."""

    @extend_schema(request=s.TagsSerializer, responses={200: s.PolicySerializer}, tags=TAGS)
    def put(self, request, policy_id):
        policy = _policy_or_404(policy_id)
        data = _valid(s.TagsSerializer, request)
        try:
            policy = services.set_policy_tags(policy, data["tags"], actor=tenant_actor(request))
        except PolicyError as error:
            raise _api_error(error) from error
        return Response(s.PolicySerializer(policy).data)


class PolicyPushView(_TenantAdminView):
    """Push the latest version of an on-demand policy to ECs by Product ID or tag, as a background job."""

    @extend_schema(request=s.PushSerializer, responses={202: s.PushJobSerializer}, tags=TAGS)
    def post(self, request, policy_id):
        policy = _policy_or_404(policy_id)
        data = _valid(s.PushSerializer, request)
        try:
            job = start_push_job(policy, actor=tenant_actor(request), product_ids=data["product_ids"],
                                 tag_names=data["tags"])
        except PolicyError as error:
            raise _api_error(error) from error
        return Response(s.PushJobSerializer(job).data, status=202)


class PushJobView(_TenantAdminView):
    @extend_schema(responses={200: s.PushJobSerializer}, tags=TAGS)
    def get(self, request, job_id):
        job = PushJob.objects.select_related("policy", "version").filter(pk=job_id).first()
        if job is None:
            raise ApiError(404, "push_job_not_found", f"Push job {job_id} not found in this tenant.")
        return Response(s.PushJobSerializer(job).data)


class EdgeControllerConfigView(_TenantAdminView):
    """An EC's desired configuration (with its sources) beside the version it applied."""

    @extend_schema(responses={200: s.ConfigStateSerializer}, tags=TAGS)
    def get(self, request, product_id):
        controller = _controller_or_404(product_id)
        return Response(s.ConfigStateSerializer(services.config_state(controller)).data)


class ManualConfigView(_TenantAdminView):
    """Set (PUT) or remove (DELETE) an EC's manual configuration, which overrides its policies."""

    @extend_schema(request=s.ConfigBodySerializer, responses={200: s.ConfigStateSerializer}, tags=TAGS)
    def put(self, request, product_id):
        controller = _controller_or_404(product_id)
        data = _valid(s.ConfigBodySerializer, request)
        try:
            services.set_manual_config(controller, data["body"], actor=tenant_actor(request))
        except PolicyError as error:
            raise _api_error(error) from error
        controller.refresh_from_db()
        return Response(s.ConfigStateSerializer(services.config_state(controller)).data)

    @extend_schema(responses={200: s.ConfigStateSerializer}, tags=TAGS)
    def delete(self, request, product_id):
        controller = _controller_or_404(product_id)
        if not services.clear_manual_config(controller, actor=tenant_actor(request)):
            raise ApiError(404, "manual_config_not_found",
                           f"EC {controller.product_id} has no manual configuration.")
        return Response(s.ConfigStateSerializer(services.config_state(controller)).data)
