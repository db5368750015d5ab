"""Forms of the Director's policy pages; the services validate the bodies against the EC configuration schema."""

from django import forms
from django.forms.fields import InvalidJSONInput

from policies.models import Policy

BODY_HELP = ("A JSON object with any of hostname, timezone, ntp_servers, dns_servers, vlans, syslog, "
             "for example {\"ntp_servers\": [\"ntp1.example.net\"]}.")


def split_names(text: str) -> list[str]:
    """Return the comma- or newline-separated names in ``text``, without blanks."""
    return [name.strip() for name in text.replace("\n", ",").split(",") if name.strip()]


class ConfigBodyField(forms.JSONField):
    """Django's JSON form field, which also rejects JSON nested too deeply to parse.

    ``json.loads`` raises ``RecursionError``, not ``JSONDecodeError``, for
    nesting deeper than about 1,000 levels, and Django's field only catches
    the latter, when cleaning and again when showing the form with its errors.
    """

    def to_python(self, value):
        try:
            return super().to_python(value)
        except RecursionError as error:
            raise forms.ValidationError("The JSON is nested too deeply; send a flatter document.",
                                        code="invalid") from error

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)


class PolicyForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=Policy.Kind.choices)
    description = forms.CharField(max_length=500, required=False)
    body = ConfigBodyField(initial=dict, help_text=BODY_HELP, widget=forms.Textarea(attrs={"rows": 6}))
    tags = forms.CharField(required=False, help_text="Auto policies only: tag names separated by commas.")


class VersionForm(forms.Form):
    body = ConfigBodyField(label="New body", help_text=BODY_HELP, widget=forms.Textarea(attrs={"rows": 8}))


class TagsForm(forms.Form):
    tags = forms.CharField(required=False, help_text="Tag names separated by commas; empty removes every tag.")


class PushForm(forms.Form):
    product_ids = forms.CharField(label="Product IDs", required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                  help_text="One per line or separated by commas.")
    tags = forms.CharField(required=False, help_text="ECs with any of these tags, separated by commas.")

    def clean(self):
        cleaned = super().clean()
        if not split_names(cleaned.get("product_ids", "")) and not split_names(cleaned.get("tags", "")):
            raise forms.ValidationError("Name the ECs to push to by Product ID, tag or both.")
        return cleaned


class ManualConfigForm(forms.Form):
    body = ConfigBodyField(label="Manual configuration", help_text=BODY_HELP,
                           widget=forms.Textarea(attrs={"rows": 6}))
