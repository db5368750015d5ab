"""Forms of the tenant admin pages, which report every invalid field with its own message."""

from __future__ import annotations

import uuid

from django import forms

from onboarding.models import Tag
from onboarding.pages.common import STATUS_LABELS
from onboarding.services import MAX_TAGS
from onboarding.services_portal import ADMIN_REVOCATION_REASONS, REASON_MAX_CHARS, PortalError, clean_tag_name
from pki.models import IssuedCertificate
from provisioning.product_ids import MODEL_NUMBER_RE, InvalidProductId, normalize_product_id

DECISIONS = [("approve", "Approve selected"), ("reject", "Reject selected")]


class RequestIdsField(forms.Field):
    """The ids of the ticked onboard requests (checkboxes named ``request_ids``)."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {"required": "No onboard request selected; tick at least one row."}

    def to_python(self, value):
        if not value:
            return []
        values = value if isinstance(value, list | tuple) else [value]
        cleaned = []
        for item in values:
            try:
                cleaned.append(uuid.UUID(str(item)))
            except ValueError as error:
                raise forms.ValidationError(f"{item!r} is not an onboard request id; reload the list.") from error
        return cleaned


def split_tag_names(text: str) -> list[str]:
    return [name.strip() for name in text.replace(";", ",").split(",") if name.strip()]


class BulkDecisionForm(forms.Form):
    request_ids = RequestIdsField()
    decision = forms.ChoiceField(choices=DECISIONS, error_messages={
        "required": "Choose Approve selected or Reject selected.",
        "invalid_choice": "%(value)s is not a decision; choose Approve selected or Reject selected.",
    })
    tags = forms.ModelMultipleChoiceField(
        queryset=Tag.objects.order_by("name"), to_field_name="name", required=False,
        widget=forms.CheckboxSelectMultiple, label="Existing tags",
        error_messages={"invalid_choice": "Tag %(value)s does not exist any more; reload the page."},
    )
    new_tags = forms.CharField(required=False, label="New tags", max_length=1000,
                               help_text="Comma separated; created on approval.")
    note = forms.CharField(required=False, label="Note", max_length=REASON_MAX_CHARS)
    reason = forms.CharField(required=False, label="Reason for rejection", max_length=REASON_MAX_CHARS)

    def clean_new_tags(self) -> list[str]:
        names = split_tag_names(self.cleaned_data["new_tags"])
        errors = []
        for name in names:
            try:
                clean_tag_name(name)
            except PortalError as error:
                errors.append(error.detail)
        if errors:
            raise forms.ValidationError(errors)
        return names

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("decision") == "reject" and not (cleaned.get("reason") or "").strip():
            self.add_error("reason", "Enter a reason for the rejection, e.g. \"unknown device\".")
        if cleaned.get("decision") == "approve":
            names = [tag.name for tag in cleaned.get("tags") or []] + (cleaned.get("new_tags") or [])
            if len(set(names)) > MAX_TAGS:
                self.add_error("new_tags", f"{len(set(names))} tags chosen; use at most {MAX_TAGS}.")
        return cleaned

    def tag_names(self) -> list[str]:
        return [tag.name for tag in self.cleaned_data["tags"]] + self.cleaned_data["new_tags"]


STATUS_CHOICES = [("", "any status"), *STATUS_LABELS.items()]


# Lengths of the five hyphen-separated groups of a UUID's text form.
UUID_GROUP_LENGTHS = (8, 4, 4, 4, 12)


def uuid_text_prefix(text: str) -> str | None:
    """Return the canonical (lower-case, hyphenated) start of a UUID for hex digits ``text``, or None.

    Hyphens in ``text`` are ignored and put back where the 8-4-4-4-12 form has them,
    so ``7C9E66797`` becomes ``7c9e6679-7``.
    """
    digits = text.replace("-", "").lower()
    if not digits or len(digits) > 32 or any(char not in "0123456789abcdef" for char in digits):
        return None
    groups = []
    for length in UUID_GROUP_LENGTHS:
        if not digits:
            break
        groups.append(digits[:length])
        digits = digits[length:]
    return "-".join(groups)


def product_id_search_prefix(text: str) -> tuple[str, bool]:
    """Turn a search term into (canonical value, exact) for the onboarded list, or raise ValidationError.

    A full Product ID gives its canonical form and exact=True. ``MODEL:uuid-start``
    gives the canonical start of matching Product IDs and exact=False, which the
    view matches with ``LIKE 'MODEL:uuid-start%'``.
    """
    try:
        return normalize_product_id(text), True
    except InvalidProductId:
        pass
    model, separator, uuid_part = text.strip().partition(":")
    model = model.strip()
    uuid_part = uuid_part.strip().lstrip("{").strip()
    if not separator or not MODEL_NUMBER_RE.match(model):
        raise forms.ValidationError(
            f"{text!r} is not a Product ID; enter one like EC100:7c9e6679-7425-40de-944b-e07fc1f90ae7, "
            "or the model number, a colon and the start of the UUID, like EC100:7c9e."
        )
    if not uuid_part:
        return f"{model.upper()}:", False
    prefix = uuid_text_prefix(uuid_part)
    if prefix is None:
        raise forms.ValidationError(
            f"{uuid_part!r} is not the start of a UUID; use hexadecimal digits (0-9, a-f), like EC100:7c9e."
        )
    return f"{model.upper()}:{prefix}", False


class ControllerFilterForm(forms.Form):
    q = forms.CharField(
        label="Product ID", required=False, max_length=128,
        help_text="A full Product ID, or the model number and the start of the UUID, like EC100:7c9e.",
    )
    tag = forms.ModelChoiceField(
        queryset=Tag.objects.order_by("name"), to_field_name="name", required=False, empty_label="any tag",
        error_messages={"invalid_choice": "No tag with that name; choose one from the list."},
    )
    status = forms.ChoiceField(
        choices=STATUS_CHOICES, required=False,
        error_messages={"invalid_choice": "%(value)s is not a status; choose online, offline or never."},
    )

    def clean_q(self) -> tuple[str, bool] | None:
        text = self.cleaned_data["q"].strip()
        return product_id_search_prefix(text) if text else None


class TagForm(forms.Form):
    name = forms.CharField(label="Tag name", required=False, max_length=200)


REVOCATION_CHOICES = [(value, IssuedCertificate.RevocationReason(value).label)
                      for value in ADMIN_REVOCATION_REASONS]


class RevokeForm(forms.Form):
    reason = forms.ChoiceField(choices=REVOCATION_CHOICES, label="Revocation reason", error_messages={
        "required": "Choose a revocation reason.",
        "invalid_choice": "%(value)s is not a revocation reason; choose one from the list.",
    })


class DecommissionForm(forms.Form):
    confirm = forms.BooleanField(label="I understand that the EC loses its certificate and tunnel", error_messages={
        "required": "Tick the confirmation box to decommission this EC.",
    })
    reason = forms.CharField(required=False, label="Reason", max_length=REASON_MAX_CHARS)
