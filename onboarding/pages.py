"""Director tenant web pages: the tenant admin's onboarding queue and fleet list."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, user_passes_test
from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from onboarding.models import EdgeController, OnboardRequest
from onboarding.services import InvalidTransition, approve_onboard_request, reject_onboard_request
from onboarding.views import tenant_actor
from pki.models import IssuedCertificate

PAGE_SIZE = 200


def _is_tenant_admin(user) -> bool:
    return user.is_authenticated and user.is_staff


tenant_admin_required = user_passes_test(_is_tenant_admin)


@login_required
@tenant_admin_required
def dashboard(request):
    pending = OnboardRequest.objects.filter(status=OnboardRequest.Status.PENDING).select_related(
        "edge_controller"
    ).order_by("created_at")[:PAGE_SIZE]
    active_certificates = IssuedCertificate.objects.filter(revoked_at__isnull=True)
    controllers = (
        EdgeController.objects.filter(state=EdgeController.State.ONBOARDED)
        .prefetch_related("tags", Prefetch("certificates", queryset=active_certificates, to_attr="active"))
        .order_by("product_id")[:PAGE_SIZE]
    )
    return render(request, "onboarding/dashboard.html", {
        "tenant": request.tenant,
        "pending": pending,
        "controllers": controllers,
    })


def _pending_request(request_id) -> OnboardRequest:
    onboard_request = OnboardRequest.objects.filter(pk=request_id).first()
    if onboard_request is None:
        raise Http404("No such onboard request in this tenant.")
    return onboard_request


@require_POST
@login_required
@tenant_admin_required
def decide(request, request_id, decision: str):
    if decision not in ("approve", "reject"):
        raise Http404("Unknown decision.")
    onboard_request = _pending_request(request_id)
    note = request.POST.get("note", "")
    try:
        if decision == "approve":
            tags = [tag for tag in request.POST.get("tags", "").replace(";", ",").split(",") if tag.strip()]
            approve_onboard_request(onboard_request, actor=tenant_actor(request), tags=tags, note=note)
            messages.success(request, f"Approved {onboard_request.product_id}; its certificate is being issued.")
        else:
            reject_onboard_request(onboard_request, actor=tenant_actor(request), note=note)
            messages.success(request, f"Rejected {onboard_request.product_id}.")
    except InvalidTransition as error:
        messages.error(request, error.detail)
    return redirect("dashboard")
