"""The MSP self-service portal (Provision Server host, under ``/portal/``).

Every page except the public sign-up form requires a signed-in MSP user, and
reads data only through :func:`owned`, which scopes a model to the user's
MSP. Another MSP's object therefore returns 404 exactly like a missing one.
The pages only read forms and call the service functions of ``msp.services``.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, F, OuterRef, Q
from django.http import Http404, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from audit.models import AuditEvent
from audit.services import Actor
from common.http import client_address
from msp import forms
from msp.authentication import actor_of, msp_of
from msp.models import MSPApiToken, TenantRegistration
from msp.services import accounts, hosted_tenants, products, registrations, signup, tenant_jobs
from msp.services.routes import explain_route
from provisioning.admin_search import search_products
from provisioning.models import LookupEvent, Product
from provisioning.product_ids import InvalidProductId, parse_product_id

logger = logging.getLogger(__name__)

PRODUCTS_PER_PAGE = 100
RECENT_LOOKUPS = 20
PRODUCT_LOOKUP_HISTORY = 50
# A result table lists every rejected row, and the other rows up to this many.
MAX_RESULT_ROWS = 1000
# Rejection reasons shown as messages after a bulk action on ticked products.
MAX_REJECTION_MESSAGES = 10


def owned(request, model):
    """Return the objects of ``model`` that belong to the signed-in user's MSP: the portal's one scoping point."""
    return model.objects.filter(msp=request.msp)


def msp_required(view):
    """Require a signed-in user of an active MSP and put that MSP on ``request.msp``."""

    @functools.wraps(view)
    @never_cache
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("msp-portal:login"))
        msp = msp_of(request)
        if msp is None:
            raise PermissionDenied("The MSP portal is for users of an MSP.")
        request.msp = msp
        return view(request, *args, **kwargs)

    return wrapper


# Sign-up (public).


def signup_request(request):
    form = forms.SignupRequestForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            signup.submit_signup_request(
                organisation_name=data["organisation_name"], contact_name=data["contact_name"],
                email=data["email"], username=data["username"], actor=_anonymous_actor(request),
            )
        except signup.SignupRejected as error:
            form.add_error(error.field, error.detail)
        else:
            return render(request, "msp/signup_done.html", {"email": data["email"]})
    return render(request, "msp/signup.html", {"form": form})


def _anonymous_actor(request) -> Actor:
    return Actor(AuditEvent.ActorType.SYSTEM, "msp-portal-signup", client_address(request))


# Dashboard.


@msp_required
def dashboard(request):
    counts = owned(request, Product).aggregate(
        allocated=Count("pk"),
        claimed=Count("pk", filter=Q(claimed_at__isnull=False)),
        mapped=Count("pk", filter=Q(tenant_registration__isnull=False)),
        looked_up=Count("pk", filter=Q(last_lookup_at__isnull=False)),
        # Reported by the device since its current mapping.
        onboarded=Count("pk", filter=Q(onboarded_at__isnull=False, mapped_at__isnull=False,
                                       onboarded_at__gte=F("mapped_at"))),
    )
    # Lookups since the product came to this MSP; earlier ones belong to its previous owner.
    own_product = owned(request, Product).filter(product_id=OuterRef("product_id"), allocated_at__lte=OuterRef("at"))
    recent = LookupEvent.objects.filter(Exists(own_product)).order_by("-at", "-id")[:RECENT_LOOKUPS]
    return render(request, "msp/dashboard.html", {"counts": counts, "recent_lookups": recent})


# Claim.


@dataclass
class ResultRow:
    position: int
    value: str
    outcome: str
    rejected: bool


@dataclass
class ResultTable:
    rows: list[ResultRow]
    changed: int
    unchanged: int
    rejected: int
    total: int
    truncated: bool


def result_table(items: list[tuple[int, str]], result: products.BulkResult, *, changed: str,
                 unchanged: str) -> ResultTable:
    """Turn a :class:`BulkResult` back into one row per input item, in input order."""
    rejected = {item.position: item for item in result.rejected}
    changed_ids = set(result.changed)
    rows: list[ResultRow] = []
    shown_others = 0
    for position, raw in items:
        if position in rejected:
            item = rejected[position]
            rows.append(ResultRow(position, item.value, item.reason, True))
            continue
        if shown_others >= MAX_RESULT_ROWS:
            continue
        shown_others += 1
        canonical = str(parse_product_id(str(raw).strip()))
        rows.append(ResultRow(position, canonical, changed if canonical in changed_ids else unchanged, False))
    others = len(result.changed) + len(result.unchanged)
    return ResultTable(rows, len(result.changed), len(result.unchanged), len(result.rejected), len(items),
                       others > shown_others)


@msp_required
def claim(request):
    bound = request.method == "POST"
    form = forms.ProductIdListForm(request.POST if bound else None, request.FILES if bound else None)
    if request.method == "POST" and form.is_valid():
        items = form.cleaned_data["items"]
        result = products.claim_products(request.msp, items, actor=actor_of(request))
        table = result_table(items, result, changed="claimed", unchanged="already claimed")
        messages.success(request, f"Claimed: {table.changed}. Already claimed: {table.unchanged}. "
                                  f"Rejected: {table.rejected}.")
        return render(request, "msp/bulk_result.html", {"title": "Claim result", "table": table})
    # A rejected upload is a 400, like the other portal forms, so scripts see the failure.
    return render(request, "msp/claim.html", {"form": form}, status=400 if bound else 200)


# Tenants.


def _hosted_urls(request) -> set[str]:
    """Return the management URLs of the tenants this deployment hosts for the user's MSP."""
    if not settings.DIRECTOR_ROLE:
        return set()
    from tenants.models import Domain
    from tenants.services import management_url_for

    domains = Domain.objects.filter(tenant__owner_msp=request.msp).values_list("domain", flat=True)
    return {management_url_for(domain) for domain in domains}


def _tenants_page(request, *, hosted_form=None, external_form=None, status=200):
    hosted_urls = _hosted_urls(request)
    registered = owned(request, TenantRegistration).annotate(product_count=Count("products")).order_by("name")
    rows = [(registration, registration.management_url in hosted_urls) for registration in registered]
    return render(request, "msp/tenants.html", {
        "rows": rows,
        "director_role": settings.DIRECTOR_ROLE,
        "hosted_form": hosted_form or forms.HostedTenantForm(msp=request.msp, prefix="hosted"),
        "external_form": external_form or forms.ExternalTenantForm(prefix="external"),
    }, status=status)


@msp_required
def tenants(request):
    return _tenants_page(request)


@require_POST
@msp_required
def create_hosted_tenant(request):
    from tenants.services import TenantRejected

    if not settings.DIRECTOR_ROLE:
        messages.error(request, "This deployment hosts no Director tenants; register a tenant of your own "
                                "Director instead.")
        return redirect("msp-portal:tenants")
    form = forms.HostedTenantForm(request.POST, msp=request.msp, prefix="hosted")
    if not form.is_valid():
        return _tenants_page(request, hosted_form=form, status=400)
    data = form.cleaned_data
    if request.POST.get("background"):
        return _start_tenant_creation_job(request, form)
    try:
        created = hosted_tenants.create_and_register_hosted_tenant(
            request.msp, name=data["name"], schema_name=data["schema_name"], domain=data["domain"],
            actor=actor_of(request), admin_username=data["admin_username"] or None,
            admin_password=data["admin_password"] or None,
        )
    except TenantRejected as error:
        # Another request took the schema name or domain after the form's check.
        form.add_error(error.field, error.detail)
        return _tenants_page(request, hosted_form=form, status=400)
    except registrations.RegistrationRejected as error:
        form.add_error(None, error.detail)
        return _tenants_page(request, hosted_form=form, status=400)

    tenant, access_key, registration = created.tenant, created.access_key, created.registration
    if created.registration_error:
        # The tenant exists now, so its key must still be shown, or it is lost.
        messages.error(request, f"The tenant was created but not registered: {created.registration_error} "
                                "Register it below with the access key shown here.")
    else:
        messages.success(request, f"Created tenant {tenant.name} at {data['management_url']} and registered it.")
    return render(request, "msp/access_key.html", {
        "title": "Tenant created", "tenant_name": tenant.name, "management_url": data["management_url"],
        "schema_name": tenant.schema_name, "access_key": access_key, "registration": registration,
    })


def _start_tenant_creation_job(request, form):
    from tenants.services import TenantRejected

    data = form.cleaned_data
    try:
        job = tenant_jobs.start_tenant_creation_job(
            request.msp, name=data["name"], schema_name=data["schema_name"], domain=data["domain"],
            actor=actor_of(request), admin_username=data["admin_username"] or "",
            admin_password=data["admin_password"] or "",
        )
    except TenantRejected as error:
        form.add_error(error.field, error.detail)
        return _tenants_page(request, hosted_form=form, status=400)
    except registrations.RegistrationRejected as error:
        form.add_error(None, error.detail)
        return _tenants_page(request, hosted_form=form, status=400)
    return redirect("msp-portal:tenant-job", job_id=job.pk)


def _own_job(request, job_id):
    from tenants.models import TenantCreationJob

    # Another MSP's job reads exactly like a missing one.
    job = TenantCreationJob.objects.filter(pk=job_id, owner_msp=request.msp).first()
    if job is None:
        raise Http404("No such tenant creation job.")
    return job


def _job_status(job) -> dict:
    return {"state": job.state, "step": job.step, "error": job.error, "finished": job.state in ("succeeded", "failed"),
            "registration_error": job.registration_error}


@never_cache
@msp_required
def tenant_job(request, job_id):
    job = _own_job(request, job_id)
    return render(request, "msp/tenant_job.html", {"job": job, "status": _job_status(job)})


@never_cache
@msp_required
def tenant_job_status(request, job_id):
    return JsonResponse(_job_status(_own_job(request, job_id)))


@require_POST
@never_cache
@msp_required
def tenant_job_access_key(request, job_id):
    job = _own_job(request, job_id)
    access_key = tenant_jobs.reveal_access_key(job)
    if access_key is None:
        messages.error(request, "This job's access key was shown already, or the job has not succeeded.")
        return redirect("msp-portal:tenant-job", job_id=job.pk)
    if job.registration_error:
        messages.error(request, f"The tenant was created but not registered: {job.registration_error} "
                                "Register it with the access key shown here.")
    return render(request, "msp/access_key.html", {
        "title": "Tenant created", "tenant_name": job.name, "management_url": job.management_url,
        "schema_name": job.schema_name, "access_key": access_key, "registration": job.registration,
    })


@require_POST
@msp_required
def register_external_tenant(request):
    from msp.management_urls import InvalidManagementUrl

    form = forms.ExternalTenantForm(request.POST, prefix="external")
    if form.is_valid():
        data = form.cleaned_data
        try:
            registration = registrations.register_tenant(
                request.msp, name=data["name"], management_url=data["management_url"],
                access_key=data["access_key"], actor=actor_of(request),
            )
        except InvalidManagementUrl as error:
            form.add_error("management_url", str(error))
        except registrations.RegistrationRejected as error:
            form.add_error(error.field, error.detail)
        else:
            messages.success(request, f"Registered tenant {registration.name} at {registration.management_url}.")
            return redirect("msp-portal:tenants")
    return _tenants_page(request, external_form=form, status=400)


@require_POST
@msp_required
def rotate_tenant_key(request, pk: int):
    registration = owned(request, TenantRegistration).filter(pk=pk).first()
    if registration is None:
        raise Http404(f"Tenant registration {pk} not found among your registrations.")
    try:
        rotated = registrations.rotate_registration_access_key(registration, actor=actor_of(request))
    except registrations.RegistrationRejected as error:
        messages.error(request, error.detail)
        return redirect("msp-portal:tenants")
    messages.success(request, f"Rotated the access key of {registration.name}.")
    return render(request, "msp/access_key.html", {
        "title": "New tenant access key", "tenant_name": registration.name,
        "management_url": registration.management_url, "schema_name": rotated.tenant.schema_name,
        "access_key": rotated.access_key, "registration": registration,
        "previous_key_valid_until": rotated.previous_key_valid_until,
    })


# Products.


@dataclass
class ProductPage:
    products: list[Product]
    next_after: int | None
    previous_before: int | None


def _keyset_page(queryset, *, after: int | None, before: int | None) -> ProductPage:
    """Return one page ordered by primary key, after or before a key: no COUNT and no OFFSET."""
    if before is not None:
        rows = list(queryset.filter(pk__lt=before).order_by("-pk")[: PRODUCTS_PER_PAGE + 1])
        has_previous = len(rows) > PRODUCTS_PER_PAGE
        rows = rows[:PRODUCTS_PER_PAGE][::-1]
        return ProductPage(rows, rows[-1].pk if rows else None, rows[0].pk if rows and has_previous else None)
    if after is not None:
        queryset = queryset.filter(pk__gt=after)
    rows = list(queryset.order_by("pk")[: PRODUCTS_PER_PAGE + 1])
    has_next = len(rows) > PRODUCTS_PER_PAGE
    rows = rows[:PRODUCTS_PER_PAGE]
    return ProductPage(rows, rows[-1].pk if rows and has_next else None,
                       rows[0].pk if rows and after is not None else None)


def _filtered_products(request, form: forms.ProductFilterForm):
    queryset = owned(request, Product).select_related("tenant_registration")
    if not form.is_valid():
        return queryset.none()
    data = form.cleaned_data
    if data["claimed"]:
        queryset = queryset.filter(claimed_at__isnull=data["claimed"] == "no")
    if data["mapped"]:
        queryset = queryset.filter(tenant_registration__isnull=data["mapped"] == "no")
    if data["registration"]:
        queryset = queryset.filter(tenant_registration=data["registration"])
    if data["q"]:
        queryset = search_products(queryset, data["q"])
    return queryset


def _page_link(query: QueryDict, **cursor) -> str:
    params = query.copy()
    for key in ("after", "before"):
        params.pop(key, None)
    params.update(cursor)
    return "?" + params.urlencode()


@msp_required
def product_list(request):
    filter_form = forms.ProductFilterForm(request.GET, msp=request.msp)
    queryset = _filtered_products(request, filter_form)
    cleaned = filter_form.cleaned_data if filter_form.is_valid() else {}
    page = _keyset_page(queryset, after=cleaned.get("after"), before=cleaned.get("before"))
    filter_query = request.GET.copy()
    for key in ("after", "before"):
        filter_query.pop(key, None)
    return render(request, "msp/products.html", {
        "filter_form": filter_form,
        "page": page,
        "next_link": _page_link(request.GET, after=page.next_after) if page.next_after else None,
        "previous_link": _page_link(request.GET, before=page.previous_before) if page.previous_before else None,
        "selection_form": forms.SelectionForm(msp=request.msp, initial={"return_query": request.GET.urlencode()}),
        "map_csv_form": forms.MapCsvForm(msp=request.msp, prefix="map"),
        "filtered": bool(filter_query),
    })


def _products_url(return_query: str) -> str:
    # Re-encoded so that only a query string, never another path or host, follows the products URL.
    query = QueryDict(return_query or "").urlencode()
    return reverse("msp-portal:products") + (f"?{query}" if query else "")


@require_POST
@msp_required
def product_selection(request):
    form = forms.SelectionForm(request.POST, msp=request.msp)
    if not form.is_valid():
        for field, errors in form.errors.items():
            for error in errors:
                label = form.fields[field].label if field in form.fields else ""
                messages.error(request, f"{label}: {error}" if label else error)
        return redirect(_products_url(request.POST.get("return_query", "")))
    data = form.cleaned_data
    items = products.numbered(data["product_ids"])
    actor = actor_of(request)
    if data["action"] == "map":
        registration = data["tenant_registration"]
        try:
            result = products.map_products_to_tenant(request.msp, registration, items, actor=actor)
        except TenantRegistration.DoesNotExist as error:
            raise Http404("The tenant registration was deleted meanwhile.") from error
        messages.success(request, f"Mapped {len(result.changed)} products to {registration.name}; "
                                  f"{len(result.unchanged)} were mapped there already.")
    else:
        result = products.unmap_products(request.msp, items, actor=actor)
        messages.success(request, f"Unmapped {len(result.changed)} products; {len(result.unchanged)} were not "
                                  "mapped.")
    for item in result.rejected[:MAX_REJECTION_MESSAGES]:
        messages.error(request, f"{item.value}: {item.reason}")
    if len(result.rejected) > MAX_REJECTION_MESSAGES:
        messages.error(request, f"{len(result.rejected) - MAX_REJECTION_MESSAGES} more products were rejected.")
    return redirect(_products_url(data["return_query"]))


@require_POST
@msp_required
def map_csv(request):
    form = forms.MapCsvForm(request.POST, request.FILES, msp=request.msp, prefix="map")
    if not form.is_valid():
        return render(request, "msp/map_csv.html", {"form": form}, status=400)
    items = form.cleaned_data["items"]
    registration = form.cleaned_data["tenant_registration"]
    try:
        result = products.map_products_to_tenant(request.msp, registration, items, actor=actor_of(request))
    except TenantRegistration.DoesNotExist as error:
        raise Http404("The tenant registration was deleted meanwhile.") from error
    table = result_table(items, result, changed="mapped", unchanged="already mapped there")
    messages.success(request, f"Mapped {table.changed} products to {registration.name}; {table.unchanged} were "
                              f"mapped there already and {table.rejected} were rejected.")
    return render(request, "msp/bulk_result.html", {"title": f"Mapping result: {registration.name}",
                                                    "table": table})


@msp_required
def product_detail(request, product_id: str):
    try:
        canonical = str(parse_product_id(product_id))
    except InvalidProductId as error:
        raise Http404(f"{product_id!r} is not a valid Product ID.") from error
    product = owned(request, Product).select_related("msp", "tenant_registration").filter(
        product_id=canonical).first()
    if product is None:
        raise Http404(f"Product ID {canonical} not found among your products.")
    explanation = explain_route(product, history_since=product.allocated_at)
    history = LookupEvent.objects.filter(product_id=product.product_id)
    if product.allocated_at is not None:
        history = history.filter(at__gte=product.allocated_at)
    return render(request, "msp/product_detail.html", {
        "product": product, "route": explanation,
        "history": history.order_by("-at", "-id")[:PRODUCT_LOOKUP_HISTORY],
        "history_limit": PRODUCT_LOOKUP_HISTORY,
    })


# API tokens.


def _tokens_page(request, form=None, status=200):
    tokens = owned(request, MSPApiToken).select_related("created_by").order_by("-created_at")
    return render(request, "msp/tokens.html", {"tokens": tokens, "form": form or forms.ApiTokenForm()},
                  status=status)


@msp_required
def api_tokens(request):
    if request.method != "POST":
        return _tokens_page(request)
    form = forms.ApiTokenForm(request.POST)
    if not form.is_valid():
        return _tokens_page(request, form, status=400)
    token, plaintext = accounts.create_api_token(request.msp, form.cleaned_data["name"], actor=actor_of(request))
    messages.success(request, f"Created API token {token.name} ({token.key_id}).")
    return render(request, "msp/token_created.html", {"token": token, "plaintext": plaintext})


@require_POST
@msp_required
def revoke_api_token(request, pk: int):
    token = owned(request, MSPApiToken).filter(pk=pk).first()
    if token is None:
        raise Http404(f"API token {pk} not found among your tokens.")
    if token.revoked_at is not None:
        messages.error(request, f"API token {token.name} ({token.key_id}) was already revoked.")
    else:
        accounts.revoke_api_token(token, actor=actor_of(request))
        messages.success(request, f"Revoked API token {token.name} ({token.key_id}); it stops working now.")
    return redirect("msp-portal:tokens")
