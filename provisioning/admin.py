from django.contrib import admin

from provisioning.models import Product, ProvisioningAccessKey


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["product_id", "state", "msp", "claimed_at", "tenant_registration", "last_lookup_at"]
    list_filter = ["state", "model_number"]
    # "=" and "^" searches use the unique index instead of scanning millions of rows.
    search_fields = ["=product_id", "^product_id"]
    list_select_related = ["msp", "tenant_registration"]
    raw_id_fields = ["msp", "tenant_registration"]
    readonly_fields = ["product_id", "model_number", "uuid", "created_at", "last_lookup_at", "last_lookup_address",
                       "last_facts"]
    show_full_result_count = False


@admin.register(ProvisioningAccessKey)
class ProvisioningAccessKeyAdmin(admin.ModelAdmin):
    """Keys are created with the create_access_key command, which shows the key once."""

    list_display = ["name", "key_id", "created_at", "expires_at", "revoked_at", "last_used_at"]
    readonly_fields = ["key_id", "created_at", "created_by", "last_used_at", "revoked_at"]
    exclude = ["key_hash"]

    def has_add_permission(self, request):
        return False
