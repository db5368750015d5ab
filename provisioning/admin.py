"""The vendor admin for products, access keys, the model catalogue and import batches.

Built for millions of products: no full-table counts, indexed search only,
raw id or autocomplete widgets instead of selects that would list every MSP
or tenant, and bulk actions that call the services (so they are audited).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.paginator import Paginator
from django.db import connection
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers
from django.utils.functional import cached_property

from audit.services import Actor
from common.http import client_address
from msp.models import MSP
from msp.services.products import allocate_products, numbered
from provisioning.admin_search import search_products
from provisioning.models import CredentialType, ImportBatch, Product, ProductModel, ProvisioningAccessKey
from provisioning.services.access_keys import create_access_key, normalize_model_list, revoke_access_key
from provisioning.services.product_state import set_products_state

# Above this many rows a list page shows the planner's estimate (unfiltered)
# or this cap (filtered) instead of an exact COUNT(*).
COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    """A paginator that never counts millions of rows."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not queryset.query.where:
            with connection.cursor() as cursor:
                cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                               [queryset.model._meta.db_table])
                row = cursor.fetchone()
            estimate = row[0] if row else -1
            if estimate > COUNT_CAP:
                return estimate
        return queryset[: COUNT_CAP + 1].count()


def _actor(request) -> Actor:
    return Actor.for_user(request.user, client_address(request))


class ProductActionForm(ActionForm):
    msp = forms.ModelChoiceField(MSP.objects.order_by("name"), required=False, label="MSP",
                                 help_text="For 'Allocate to MSP'")


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["product_id", "state", "msp", "claimed_at", "tenant_registration", "serial_number",
                    "last_lookup_at"]
    list_filter = ["state"]
    search_fields = ["product_id"]
    search_help_text = "A full Product ID, MODEL:uuid-prefix, a UUID prefix or a serial number."
    list_select_related = ["msp", "tenant_registration"]
    autocomplete_fields = ["msp", "tenant_registration"]
    readonly_fields = ["product_id", "model_number", "uuid", "created_at", "import_batch", "last_lookup_at",
                       "last_lookup_address", "last_facts", "credential_type", "credential_shown", "metadata",
                       "allocated_at", "claimed_at", "mapped_at"]
    # The credential is shown by credential_shown, which hides secret hashes.
    exclude = ["credential"]
    show_full_result_count = False
    paginator = CappedCountPaginator
    action_form = ProductActionForm
    actions = ["allocate_to_msp", "disable", "decommission", "reactivate"]
    list_per_page = 100

    def get_search_results(self, request, queryset, search_term):
        return search_products(queryset, search_term), False

    @admin.display(description="credential")
    def credential_shown(self, product: Product) -> str:
        # A secret's SHA-256 keys the lookup's proof of possession, so whoever
        # reads it can answer the device's challenges; a public key is public.
        if product.credential_type == CredentialType.SECRET_SHA256:
            return "stored, not shown"
        return product.credential

    def has_add_permission(self, request):
        # Products come from the manufacturing import, which validates and audits them.
        return False

    @admin.action(description="Allocate to MSP (choose it above)")
    def allocate_to_msp(self, request, queryset):
        msp_id = request.POST.get("msp")
        msp = MSP.objects.filter(pk=msp_id).first() if msp_id else None
        if msp is None:
            self.message_user(request, "Choose an MSP in the box next to the action, then run it again.",
                              messages.ERROR)
            return
        result = allocate_products(msp, numbered(queryset.values_list("product_id", flat=True)),
                                   actor=_actor(request))
        level = messages.WARNING if result.rejected else messages.SUCCESS
        self.message_user(request, f"Allocated {len(result.changed)} products to {msp}; {len(result.unchanged)} "
                                   f"were already its; {len(result.rejected)} belong to another MSP.", level)

    def _set_state(self, request, queryset, state: str) -> None:
        changed = set_products_state(queryset, state, actor=_actor(request))
        self.message_user(request, f"{changed} products are now {state}.", messages.SUCCESS)

    @admin.action(description="Disable (lookups get 403)")
    def disable(self, request, queryset):
        self._set_state(request, queryset, Product.State.DISABLED)

    @admin.action(description="Decommission (lookups get 403)")
    def decommission(self, request, queryset):
        self._set_state(request, queryset, Product.State.DECOMMISSIONED)

    @admin.action(description="Re-activate")
    def reactivate(self, request, queryset):
        self._set_state(request, queryset, Product.State.ACTIVE)


class AccessKeyForm(forms.ModelForm):
    class Meta:
        model = ProvisioningAccessKey
        fields = ["name", "expires_at", "allowed_models"]

    def clean_allowed_models(self) -> str:
        try:
            return ",".join(normalize_model_list(self.cleaned_data.get("allowed_models", "")))
        except ValueError as error:
            raise forms.ValidationError(f"{error}; use model numbers such as EC100,EC200.") from error


@admin.register(ProvisioningAccessKey)
class ProvisioningAccessKeyAdmin(admin.ModelAdmin):
    """Adding a key here shows the key once, in the response to the form; only its hash is stored.

    The key is rendered into that response rather than put in an admin
    message: Django keeps messages in a signed but readable cookie, or in the
    session table when the cookie is full, so the key would outlive the page.
    """

    list_display = ["name", "key_id", "created_at", "expires_at", "revoked_at", "last_used_at", "allowed_models"]
    readonly_fields = ["key_id", "created_at", "created_by", "last_used_at", "revoked_at"]
    exclude = ["key_hash"]
    form = AccessKeyForm
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        # Name, expiry and model restriction are set at creation; later only revocation.
        if obj is not None:
            return [*self.readonly_fields, "name", "expires_at", "allowed_models"]
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            return
        created, plaintext = create_access_key(
            form.cleaned_data["name"], actor=_actor(request), expires_at=form.cleaned_data.get("expires_at"),
            allowed_models=form.cleaned_data.get("allowed_models") or "",
        )
        obj.pk = created.pk
        # Read by response_add of this same request; never stored.
        request._new_access_key = (created, plaintext)

    def response_add(self, request, obj, post_url_continue=None):
        created, plaintext = request._new_access_key
        response = TemplateResponse(request, "admin/provisioning/provisioningaccesskey/created.html", {
            **self.admin_site.each_context(request), "access_key": created, "plaintext": plaintext,
            "opts": self.opts, "title": f"Access key {created.key_id} created",
        })
        # The page contains the key: no browser or proxy cache may keep it.
        add_never_cache_headers(response)
        return response

    def has_delete_permission(self, request, obj=None):
        # Revoked keys stay for the audit trail.
        return False

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for access_key in queryset:
            revoke_access_key(access_key, actor=_actor(request))
        self.message_user(request, f"Revoked {queryset.count()} access keys.", messages.SUCCESS)


@admin.register(ProductModel)
class ProductModelAdmin(admin.ModelAdmin):
    list_display = ["model_number", "name", "created_at"]
    search_fields = ["model_number", "name"]


@admin.register(ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    """Import batches are written by the import and never edited."""

    list_display = ["created_at", "created_by", "source_name", "status", "rows", "inserted", "unchanged", "updated",
                    "rejected", "allocated_to", "allocated", "duration"]

    @admin.display(description="seconds")
    def duration(self, batch: ImportBatch) -> str:
        return f"{batch.seconds:.1f}"
    list_filter = ["status"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
