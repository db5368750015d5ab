"""Forms of the MSP portal. Each one reports every invalid field next to that field.

The forms only check input and turn it into the arguments of the service
functions; the pages call the services.
"""

from __future__ import annotations

import io
import re

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.db.models import Q
from django.utils.text import slugify

from msp.management_urls import InvalidManagementUrl, normalize_management_url
from msp.models import MSP, TenantRegistration
from msp.services.registrations import MIN_ACCESS_KEY_CHARS
from msp.services.signup import check_signup_request
from provisioning.services.csv_reading import ImportFileError, ProductIdColumn

# A CSV of this size contains about 100,000 Product IDs (an estimate at about
# 50 bytes a line). Larger lists go through the MSP API or the claim_products
# and map_products commands.
MAX_CSV_BYTES = 5 * 1024 * 1024
MAX_SCHEMA_NAME_CHARS = 63
DEFAULT_TENANT_DOMAIN_SUFFIX = "localhost"


class SignupRequestForm(forms.Form):
    organisation_name = forms.CharField(label="Organisation name", max_length=200)
    contact_name = forms.CharField(label="Contact name", max_length=200)
    email = forms.EmailField(label="Email", help_text="The link to set your password is sent here.")
    username = forms.CharField(label="Requested user name", max_length=150,
                               validators=[UnicodeUsernameValidator()],
                               help_text="Letters, digits and @ . + - _ only.")

    def clean(self):
        cleaned = super().clean()
        organisation_name = cleaned.get("organisation_name")
        username = cleaned.get("username")
        if organisation_name and not slugify(organisation_name):
            self.add_error("organisation_name", "The organisation name needs at least one letter or digit.")
        if organisation_name and username:
            for problem in check_signup_request(organisation_name=organisation_name, username=username):
                self.add_error(problem.field, problem.detail)
        return cleaned


class ProductIdListForm(forms.Form):
    """A list of Product IDs, from an uploaded CSV file or pasted one per line."""

    csv_file = forms.FileField(
        label="CSV file", required=False,
        help_text="One Product ID per row, or a header row naming a product_id column. "
                  f"At most {MAX_CSV_BYTES // (1024 * 1024)} MB.",
    )
    product_ids = forms.CharField(label="Or paste Product IDs", required=False,
                                  widget=forms.Textarea(attrs={"rows": 8, "cols": 60}),
                                  help_text="One Product ID per line, e.g. EC100:7c9e6679-7425-40de-944b-e07fc1f90ae7")

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("csv_file")
        pasted = (cleaned.get("product_ids") or "").strip()
        if "csv_file" in self.errors or "product_ids" in self.errors:
            return cleaned
        if upload and pasted:
            self.add_error("product_ids", "Give either a CSV file or pasted Product IDs, not both.")
            return cleaned
        if upload:
            cleaned["items"] = self._read_csv(upload)
        elif pasted:
            cleaned["items"] = self._read_csv(io.BytesIO(pasted.encode()), field="product_ids")
        else:
            self.add_error("product_ids", "Upload a CSV file or paste at least one Product ID.")
            return cleaned
        # None means the file could not be read, and that error is already shown.
        if cleaned.get("items") == []:
            field = "csv_file" if upload else "product_ids"
            self.add_error(field, "No Product IDs found: every line is blank or a header.")
        return cleaned

    def _read_csv(self, upload, field: str = "csv_file") -> list[tuple[int, str]] | None:
        size = getattr(upload, "size", None)
        if size is not None and size > MAX_CSV_BYTES:
            self.add_error(field, f"The file has {size} bytes, more than the limit of {MAX_CSV_BYTES}; "
                                  "split it, or use the MSP API.")
            return None
        try:
            return list(ProductIdColumn(upload))
        except ImportFileError as error:
            self.add_error(field, f"The CSV cannot be read: {error}.")
            return None


def _registration_field(msp: MSP, *, required: bool = True, label: str = "Tenant") -> forms.ModelChoiceField:
    # Scoped here so another MSP's registration id is an invalid choice, like one that does not exist.
    field = forms.ModelChoiceField(queryset=TenantRegistration.objects.filter(msp=msp).order_by("name"),
                                   required=required, label=label, empty_label="(choose a tenant)")
    # Names are unique per MSP, so the name alone identifies the tenant.
    field.label_from_instance = lambda registration: registration.name
    return field


class MapCsvForm(ProductIdListForm):
    def __init__(self, *args, msp: MSP, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant_registration"] = _registration_field(msp)
        self.order_fields(["tenant_registration", "csv_file", "product_ids"])


class ValueListField(forms.Field):
    """A list of strings sent under one name, such as the values of ticked checkboxes."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        return [str(item) for item in value] if value else []


class SelectionForm(forms.Form):
    """The products ticked in the product list, and what to do with them."""

    ACTIONS = [("map", "Map to tenant"), ("unmap", "Unmap")]

    action = forms.ChoiceField(choices=ACTIONS)
    # Each value is checked by the service, which reports a bad one as a rejected row.
    product_ids = ValueListField(label="Products", error_messages={"required": "Tick at least one product."})
    return_query = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, msp: MSP, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant_registration"] = _registration_field(msp, required=False)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("action") == "map" and not cleaned.get("tenant_registration"):
            self.add_error("tenant_registration", "Choose the tenant to map the ticked products to.")
        return cleaned


class ProductFilterForm(forms.Form):
    YES_NO = [("", "any"), ("yes", "yes"), ("no", "no")]

    q = forms.CharField(label="Product ID, UUID prefix or serial", required=False, max_length=128)
    claimed = forms.ChoiceField(label="Claimed", choices=YES_NO, required=False)
    mapped = forms.ChoiceField(label="Mapped", choices=YES_NO, required=False)
    after = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    before = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def __init__(self, *args, msp: MSP, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["registration"] = _registration_field(msp, required=False, label="Tenant")
        self.fields["registration"].empty_label = "any"
        self.order_fields(["q", "claimed", "mapped", "registration"])


def derive_schema_name(name: str) -> str:
    """Return a PostgreSQL schema name made from a tenant name: lower case, ``_`` for others, a letter first."""
    text = re.sub(r"[^a-z0-9]+", "_", slugify(name).lower()).strip("_")
    if not text or not text[0].isalpha():
        text = f"t_{text}".rstrip("_")
    return text[:MAX_SCHEMA_NAME_CHARS].rstrip("_")


def derive_domain(name: str) -> str:
    return f"{slugify(name)[:63].strip('-')}.{DEFAULT_TENANT_DOMAIN_SUFFIX}"


class HostedTenantForm(forms.Form):
    name = forms.CharField(label="Tenant name", max_length=200)
    schema_name = forms.CharField(label="Schema name", max_length=MAX_SCHEMA_NAME_CHARS, required=False,
                                  help_text="Leave blank to make it from the name (e.g. acme_corp).")
    domain = forms.CharField(label="Domain", max_length=253, required=False,
                             help_text="Leave blank for NAME.localhost, NAME made from the tenant name.")
    admin_username = forms.CharField(label="Tenant admin user name", max_length=150, required=False,
                                     validators=[UnicodeUsernameValidator()],
                                     help_text="The first user who signs in at the tenant's Director. "
                                               "Leave both admin fields blank to create no user.")
    admin_password = forms.CharField(label="Tenant admin password", required=False, strip=False,
                                     widget=forms.PasswordInput(render_value=False))

    def __init__(self, *args, msp: MSP, **kwargs):
        super().__init__(*args, **kwargs)
        self.msp = msp

    def clean(self):
        from tenants.services import TenantRejected, management_url_for, validate_new_tenant

        cleaned = super().clean()
        self._clean_admin(cleaned)
        name = (cleaned.get("name") or "").strip()
        if not name:
            return cleaned
        if not slugify(name):
            self.add_error("name", "The tenant name needs at least one letter or digit.")
            return cleaned
        schema_name = (cleaned.get("schema_name") or "").strip().lower() or derive_schema_name(name)
        domain = (cleaned.get("domain") or "").strip().lower() or derive_domain(name)
        cleaned["schema_name"], cleaned["domain"], cleaned["name"] = schema_name, domain, name
        try:
            validate_new_tenant(schema_name, domain)
        except TenantRejected as error:
            self.add_error(error.field, error.detail)
            return cleaned

        # Checked before the schema exists: afterwards the access key, shown
        # only once, would be lost with a failed registration.
        url = management_url_for(domain)
        if TenantRegistration.objects.filter(msp=self.msp, name=name).exists():
            self.add_error("name", f"You already have a tenant registered as {name!r}; pick another name.")
        elif TenantRegistration.objects.filter(Q(management_url=url)).exists():
            self.add_error("domain", f"A tenant is already registered at {url}; pick another domain.")
        cleaned["management_url"] = url
        return cleaned

    def _clean_admin(self, cleaned) -> None:
        """Check the optional first tenant admin: both fields or neither, and a password the validators accept."""
        username = (cleaned.get("admin_username") or "").strip()
        password = cleaned.get("admin_password") or ""
        cleaned["admin_username"] = username
        if "admin_username" in self.errors:
            return
        if username and not password:
            self.add_error("admin_password", "Missing tenant admin password: give one, or leave the user name blank.")
        elif password and not username:
            self.add_error("admin_username", "Missing tenant admin user name: give one, or leave the password blank.")
        elif password:
            # The user does not exist yet, so an unsaved one lets the similarity validator compare the name.
            try:
                password_validation.validate_password(password, user=get_user_model()(username=username))
            except forms.ValidationError as error:
                self.add_error("admin_password", error)


class ExternalTenantForm(forms.Form):
    name = forms.CharField(label="Tenant name", max_length=200)
    management_url = forms.CharField(label="Management URL", max_length=255,
                                     help_text="The tenant's Director address, e.g. https://acme.director.example")
    access_key = forms.CharField(label="Tenant access key", min_length=MIN_ACCESS_KEY_CHARS, max_length=512,
                                 strip=True, widget=forms.PasswordInput(render_value=False),
                                 help_text="The key the Director showed when the tenant was created. "
                                           "It is stored encrypted and never shown again.")

    def clean_name(self):
        return self.cleaned_data["name"].strip()

    def clean_management_url(self):
        try:
            return normalize_management_url(self.cleaned_data["management_url"])
        except InvalidManagementUrl as error:
            raise forms.ValidationError(f"{error}.") from error


class ApiTokenForm(forms.Form):
    name = forms.CharField(label="Token name", max_length=100,
                           help_text="What the token is for, e.g. the name of your automation.")

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the token a name.")
        return name
