"""The onboarding dashboard: pending requests with their decisions, and the onboarded ECs with live status."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.db.models import Prefetch, Q
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from onboarding.models import EdgeController, OnboardRequest, Tag
from onboarding.pages.common import (
    PAGE_SIZE,
    STATUS_LABELS,
    filter_by_tunnel_status,
    tenant_admin_json,
    tenant_admin_page,
    tunnel_status,
)
from onboarding.pages.forms import BulkDecisionForm, ControllerFilterForm, split_tag_names
from onboarding.pages.paging import Page, keyset_page, page_link
from onboarding.services import InvalidTransition, approve_onboard_request, reject_onboard_request
from onboarding.services_portal import PortalError, approve_onboard_requests, reject_onboard_requests
from onboarding.views import tenant_actor
from pki.models import IssuedCertificate

# Interval between the onboarded list's tunnel status requests (seconds).
STATUS_POLL_SECONDS = 3


# Query parameters of the two lists' cursors. A link to another page of one list keeps the other's.
ONBOARDED_CURSOR_KEYS = ("after", "before")
PENDING_CURSOR_KEYS = ("pending_after", "pending_before")
FILTER_KEYS = ("q", "tag", "status")


def _int_cursor(query, key: str) -> int | None:
    value = query.get(key, "")
    return int(value) if value.isdigit() else None


def _uuid_cursor(query, key: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(query.get(key, ""))
    except ValueError:
        return None


def _filtered_controllers(filter_form: ControllerFilterForm):
    active_certificates = IssuedCertificate.objects.filter(revoked_at__isnull=True)
    controllers = EdgeController.objects.filter(state=EdgeController.State.ONBOARDED).prefetch_related(
        "tags", Prefetch("certificates", queryset=active_certificates, to_attr="active")
    )
    if not filter_form.is_valid():
        return controllers
    data = filter_form.cleaned_data
    if data["q"] is not None:
        value, exact = data["q"]
        # startswith is LIKE 'value%', which the product_id column's varchar_pattern_ops index serves.
        controllers = controllers.filter(product_id=value) if exact else controllers.filter(
            product_id__startswith=value)
    if data["tag"] is not None:
        controllers = controllers.filter(tags=data["tag"])
    return filter_by_tunnel_status(controllers, data["status"])


def _onboarded_page(query, filter_form: ControllerFilterForm) -> Page:
    """Return one page of the onboarded ECs, newest first (descending primary key)."""
    after = _int_cursor(query, "after")
    before = _int_cursor(query, "before")
    page = keyset_page(
        _filtered_controllers(filter_form), ["-pk"], cursor_of=lambda controller: controller.pk,
        after=Q(pk__lt=after) if after is not None else None,
        before=Q(pk__gt=before) if before is not None and after is None else None,
    )
    for controller in page.rows:
        controller.tunnel_status = tunnel_status(controller)
        controller.tunnel_status_label = STATUS_LABELS[controller.tunnel_status]
    return page


def _pending_page(query) -> Page:
    """Return one page of the pending requests, oldest first by (created_at, id).

    A cursor is a request id, and its created_at is read back here, so links
    carry only the id. An unknown id shows the first page.
    """
    pending = OnboardRequest.objects.filter(status=OnboardRequest.Status.PENDING).select_related(
        "edge_controller"
    )
    after_id = _uuid_cursor(query, "pending_after")
    before_id = _uuid_cursor(query, "pending_before") if after_id is None else None
    cursor_id = after_id or before_id
    created_at = None
    if cursor_id is not None:
        created_at = OnboardRequest.objects.filter(pk=cursor_id).values_list("created_at", flat=True).first()
    after = before = None
    # The leading created_at bound lets the (status, created_at, id) index start at the cursor.
    if created_at is not None and after_id is not None:
        after = Q(created_at__gte=created_at) & (Q(created_at__gt=created_at) | Q(pk__gt=after_id))
    if created_at is not None and before_id is not None:
        before = Q(created_at__lte=created_at) & (Q(created_at__lt=created_at) | Q(pk__lt=before_id))
    return keyset_page(pending, ["created_at", "pk"], cursor_of=lambda item: item.pk, after=after, before=before)


def _page_links(query, page: Page, cursor_keys: tuple[str, str]) -> dict:
    after_key, before_key = cursor_keys
    return {
        "next": page_link(query, cursor_keys, after_key, page.next_cursor) if page.next_cursor else None,
        "previous": page_link(query, cursor_keys, before_key, page.previous_cursor)
        if page.previous_cursor else None,
    }


def _render_dashboard(request, *, bulk_form: BulkDecisionForm | None = None, status: int = 200):
    query = request.GET
    filters = {key: query[key] for key in FILTER_KEYS if query.get(key)}
    filter_form = ControllerFilterForm(filters or None)
    pending = _pending_page(query)
    controllers = _onboarded_page(query, filter_form)
    return render(request, "onboarding/dashboard.html", {
        "tenant": request.tenant,
        "nav": "dashboard",
        "pending": pending.rows,
        "pending_links": _page_links(query, pending, PENDING_CURSOR_KEYS),
        "selected_ids": {str(pk) for pk in request.POST.getlist("request_ids")},
        "bulk_form": bulk_form or BulkDecisionForm(),
        "has_tags": Tag.objects.exists(),
        "filter_form": filter_form,
        "filtered": bool(filters),
        "controllers": controllers.rows,
        "onboarded_links": _page_links(query, controllers, ONBOARDED_CURSOR_KEYS),
        "status_url": reverse("controller-status"),
        "poll_seconds": STATUS_POLL_SECONDS,
    }, status=status)


@tenant_admin_page
def dashboard(request):
    return _render_dashboard(request)


@require_POST
@tenant_admin_page
def decide(request, request_id, decision: str):
    """Approve or reject one request from its row. Here the note (the rejection reason) is optional."""
    if decision not in ("approve", "reject"):
        raise Http404("Unknown decision.")
    onboard_request = OnboardRequest.objects.filter(pk=request_id).first()
    if onboard_request is None:
        raise Http404("No such onboard request in this tenant.")
    note = request.POST.get("note", "")
    try:
        if decision == "approve":
            tags = split_tag_names(request.POST.get("tags", ""))
            approve_onboard_request(onboard_request, actor=tenant_actor(request), tags=tags, note=note)
            messages.success(request, f"Approved {onboard_request.product_id}; its certificate is being issued.")
        else:
            reject_onboard_request(onboard_request, actor=tenant_actor(request), note=note)
            messages.success(request, f"Rejected {onboard_request.product_id}.")
    except InvalidTransition as error:
        messages.error(request, error.detail)
    return redirect("dashboard")


@require_POST
@tenant_admin_page
def decide_many(request):
    """Approve or reject the ticked requests at once. An invalid field re-renders the page with its message."""
    form = BulkDecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Nothing was decided; correct the fields marked below.")
        return _render_dashboard(request, bulk_form=form, status=400)

    ids = form.cleaned_data["request_ids"]
    try:
        if form.cleaned_data["decision"] == "approve":
            done = approve_onboard_requests(ids, actor=tenant_actor(request), tags=form.tag_names(),
                                            note=form.cleaned_data["note"])
            verb = "Approved"
        else:
            done = reject_onboard_requests(ids, actor=tenant_actor(request), reason=form.cleaned_data["reason"])
            verb = "Rejected"
    except (PortalError, InvalidTransition) as error:
        form.add_error(getattr(error, "field", None), error.detail)
        messages.error(request, f"Nothing was decided: {error.detail}")
        return _render_dashboard(request, bulk_form=form, status=400)

    product_ids = ", ".join(item.product_id for item in done)
    suffix = "; their certificates are being issued." if verb == "Approved" else "."
    messages.success(request, f"{verb} {len(done)}: {product_ids}{suffix}")
    return redirect("dashboard")


@require_GET
@tenant_admin_json
def controller_status(request):
    """Return the tunnel status of the ECs named in ``?ids=1,2,3`` (of this tenant only), for live refresh."""
    raw_ids = [part for part in request.GET.get("ids", "").split(",") if part.strip()]
    bad = [part for part in raw_ids if not part.strip().isdigit()]
    if bad:
        return JsonResponse({"code": "invalid_ids",
                             "detail": f"ids must be EC ids separated by commas; {bad[0]!r} is not one."},
                            status=400)
    if len(raw_ids) > PAGE_SIZE:
        return JsonResponse({"code": "too_many_ids",
                             "detail": f"{len(raw_ids)} ids given; ask for at most {PAGE_SIZE}."}, status=400)
    controllers = EdgeController.objects.filter(pk__in=[int(part) for part in raw_ids]).only(
        "pk", "product_id", "online", "tunnel_connected_at", "last_heartbeat_at"
    )
    rows = []
    for controller in controllers:
        status = tunnel_status(controller)
        heartbeat = controller.last_heartbeat_at
        rows.append({
            "id": controller.pk,
            "product_id": controller.product_id,
            "status": status,
            "status_label": STATUS_LABELS[status],
            "last_heartbeat_at": heartbeat.isoformat() if heartbeat else None,
            "last_heartbeat_display": f"{heartbeat:%Y-%m-%d %H:%M:%S} UTC" if heartbeat else "never",
        })
    return JsonResponse({"controllers": rows})
