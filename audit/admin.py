from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only view of the audit log: events are evidence and never edited."""

    list_display = [
        "at", "actor_type", "actor", "action", "object_type", "object_id", "tenant_schema", "source_address",
    ]
    list_filter = ["action", "actor_type"]
    search_fields = ["=object_id", "=actor", "=tenant_schema", "^action"]
    date_hierarchy = "at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
