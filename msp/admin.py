from django.contrib import admin, messages

from audit.services import Actor
from common.http import client_address
from msp.models import MSP, MSPApiToken, MSPMembership, MSPSignupRequest, TenantRegistration
from msp.services.signup import SignupRejected, approve_signup_request, reject_signup_request
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


@admin.register(MSPSignupRequest)
class MSPSignupRequestAdmin(admin.ModelAdmin):
    """Sign-up requests from the MSP portal; approving one creates the MSP and emails its user."""

    list_display = ["organisation_name", "contact_name", "email", "username", "status", "created_at", "decided_at"]
    list_filter = ["status"]
    search_fields = ["organisation_name", "username", "email"]
    readonly_fields = ["organisation_name", "contact_name", "email", "username", "status", "created_at",
                       "decided_at", "decided_by", "msp"]
    actions = ["approve", "reject"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Requests change only through the actions below; the detail page is view-only.
        return False

    @admin.action(description="Approve: create the MSP and its user, and email the password-set link")
    def approve(self, request, queryset):
        actor = Actor.for_user(request.user, client_address(request))
        for signup in queryset.order_by("pk"):
            try:
                msp = approve_signup_request(signup, actor=actor, domain=request.get_host(),
                                             use_https=request.is_secure())
            except SignupRejected as error:
                self.message_user(request, f"{signup.organisation_name}: {error.detail}", messages.ERROR)
            else:
                self.message_user(request, f"Approved {signup.organisation_name}: created MSP {msp.slug} and user "
                                           f"{signup.username}, and emailed {signup.email} a password-set link.",
                                  messages.SUCCESS)

    @admin.action(description="Reject the selected requests")
    def reject(self, request, queryset):
        actor = Actor.for_user(request.user, client_address(request))
        for signup in queryset.order_by("pk"):
            try:
                reject_signup_request(signup, actor=actor)
            except SignupRejected as error:
                self.message_user(request, f"{signup.organisation_name}: {error.detail}", messages.ERROR)
            else:
                self.message_user(request, f"Rejected the request of {signup.organisation_name}.", messages.SUCCESS)


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
