from django.contrib import admin

from msp.models import MSP, MSPApiToken, MSPMembership, TenantRegistration


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
