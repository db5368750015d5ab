from django import forms
from django.contrib import admin

from tenants.models import Domain, Tenant
from tenants.services import DOMAIN_RE


class DomainForm(forms.ModelForm):
    """A tenant's host name, checked like one given at tenant creation and stored in lower case.

    The tenant middleware looks hosts up in lower case, so a domain stored
    with capitals would never be reached.
    """

    class Meta:
        model = Domain
        fields = ["domain", "is_primary"]

    def clean_domain(self) -> str:
        domain = self.cleaned_data["domain"].strip().lower()
        if "domain" in self.changed_data and not DOMAIN_RE.match(domain):
            raise forms.ValidationError(f"Domain {domain!r} is not a valid host name like acme.director.example.",
                                        code="invalid_domain")
        if "domain" in self.changed_data and domain.startswith("www."):
            raise forms.ValidationError(f"Domain {domain!r} starts with 'www.', which is served as {domain[4:]!r}.",
                                        code="invalid_domain")
        return domain


class DomainInline(admin.TabularInline):
    model = Domain
    form = DomainForm
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
