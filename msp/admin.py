from django.contrib import admin

from msp.models import MSP, MSPApiToken, MSPMembership, TenantRegistration
from provisioning.models import LookupEvent
from provisioning.product_ids import InvalidProductId, normalize_product_id


@admin.register(MSP)
class MSPAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "is_active", "created_at"]
    search_fields = ["name", "slug"]


@admin.register(MSPMembership)
class MSPMembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "msp"]
    raw_id_fields = ["user"]
    autocomplete_fields = ["msp"]


@admin.register(MSPApiToken)
class MSPApiTokenAdmin(admin.ModelAdmin):
    list_display = ["msp", "name", "key_id", "created_at", "revoked_at"]
    exclude = ["key_hash"]
    readonly_fields = ["msp", "name", "key_id", "created_by", "created_at", "last_used_at"]

    def has_add_permission(self, request):
        return False


@admin.register(TenantRegistration)
class TenantRegistrationAdmin(admin.ModelAdmin):
    """The encrypted access key is never shown, not even encrypted."""

    list_display = ["name", "msp", "management_url", "created_at", "updated_at"]
    search_fields = ["name", "management_url"]
    exclude = ["access_key_encrypted"]
    readonly_fields = ["msp", "name", "management_url", "created_at", "updated_at"]

    def has_add_permission(self, request):
        return False



@admin.register(LookupEvent)
class LookupEventAdmin(admin.ModelAdmin):
    """The sampled ZTP lookup history; rows are written only by the lookup itself."""

    list_display = ["at", "product_id", "status", "code", "access_key_id", "source_address"]
    list_filter = ["status", "code"]
    search_fields = ["product_id"]
    search_help_text = "One Product ID, in any form the lookup accepts (malformed ones exactly as sent)."
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        # An exact match on the canonical form uses the (product_id, at)
        # index; the admin's default icontains search would scan the table.
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            product_id = normalize_product_id(term)
        except InvalidProductId:
            product_id = term
        return queryset.filter(product_id=product_id), False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
