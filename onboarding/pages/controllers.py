"""One EC's detail page and its actions: revoke the active certificate, decommission."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from onboarding.pages.common import STATUS_LABELS, controller_or_404, tenant_admin_page, tunnel_status
from onboarding.pages.forms import DecommissionForm, RevokeForm
from onboarding.pages.timeline import build_timeline
from onboarding.services_portal import PortalError, decommission_edge_controller, revoke_active_certificate
from onboarding.views import tenant_actor
from pki.models import IssuedCertificate
from policies.pages import ec_config_context


def _render_detail(request, controller, *, revoke_form=None, decommission_form=None, status: int = 200):
    certificates = list(IssuedCertificate.objects.filter(edge_controller=controller).order_by("-issued_at"))
    onboard_requests = list(controller.onboard_requests.order_by("-created_at"))
    active = next((certificate for certificate in certificates if certificate.revoked_at is None), None)
    state = tunnel_status(controller)
    return render(request, "onboarding/controller_detail.html", {
        "tenant": request.tenant,
        "nav": "dashboard",
        "controller": controller,
        "tags": controller.tags.order_by("name"),
        "certificates": certificates,
        "active_certificate": active,
        "onboard_requests": onboard_requests,
        "tunnel_status": state,
        "tunnel_status_label": STATUS_LABELS[state],
        "timeline": build_timeline(controller, [item.serial_hex for item in certificates],
                                   [str(item.pk) for item in onboard_requests]),
        "revoke_form": revoke_form or RevokeForm(),
        "decommission_form": decommission_form or DecommissionForm(),
        "is_decommissioned": controller.state == controller.State.DECOMMISSIONED,
        "config": ec_config_context(controller),
    }, status=status)


@tenant_admin_page
def controller_detail(request, controller_id: int):
    return _render_detail(request, controller_or_404(controller_id))


@require_POST
@tenant_admin_page
def revoke(request, controller_id: int):
    controller = controller_or_404(controller_id)
    form = RevokeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The certificate was not revoked; correct the fields marked below.")
        return _render_detail(request, controller, revoke_form=form, status=400)
    try:
        certificate = revoke_active_certificate(controller, actor=tenant_actor(request),
                                                reason=form.cleaned_data["reason"])
    except PortalError as error:
        messages.error(request, error.detail)
        return redirect("controller-detail", controller_id=controller.pk)
    messages.success(request, f"Revoked certificate {certificate.serial_hex} of {controller.product_id}; "
                              "its tunnel closes within a few seconds.")
    return redirect("controller-detail", controller_id=controller.pk)


@require_POST
@tenant_admin_page
def decommission(request, controller_id: int):
    controller = controller_or_404(controller_id)
    form = DecommissionForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"{controller.product_id} was not decommissioned; correct the fields marked below.")
        return _render_detail(request, controller, decommission_form=form, status=400)
    try:
        decommission_edge_controller(controller, actor=tenant_actor(request), reason=form.cleaned_data["reason"])
    except PortalError as error:
        messages.error(request, error.detail)
        return redirect("controller-detail", controller_id=controller.pk)
    messages.success(request, f"Decommissioned {controller.product_id}; its certificate is revoked.")
    return redirect("controller-detail", controller_id=controller.pk)
