from django.contrib import admin

from tenants.models import Domain, Tenant


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    """Tenants are created with create_hosted_tenant or the MSP API (schema, CA and key together)."""

    list_display = ["schema_name", "name", "owner_msp", "created_at"]
    search_fields = ["schema_name", "name"]
    exclude = ["access_key_hash", "previous_access_key_hash"]
    readonly_fields = ["schema_name", "access_key_id", "previous_access_key_id", "previous_key_valid_until",
                       "created_at"]
    inlines = [DomainInline]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
