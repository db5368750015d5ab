"""Domains that vendor staff add to a tenant in the admin are checked like those given at tenant creation."""

from __future__ import annotations

import pytest
from django.contrib.admin.sites import site
from django.test import RequestFactory

from tenants.models import Domain, Tenant


def _domain_formset(world, new_domain: str):
    """Bind tenant A's domain inline with its existing domain and ``new_domain`` added."""
    tenant = Tenant.objects.get(schema_name=world.a.tenant.schema_name)
    model_admin = site._registry[Tenant]
    request = RequestFactory().post("/admin/")
    request.user = world.vendor_admin
    inline = next(inline for inline in model_admin.get_inline_instances(request, tenant)
                  if inline.model is Domain)
    existing = list(tenant.domains.order_by("pk"))
    data = {"domains-TOTAL_FORMS": str(len(existing) + 1), "domains-INITIAL_FORMS": str(len(existing)),
            "domains-MIN_NUM_FORMS": "0", "domains-MAX_NUM_FORMS": "1000"}
    for index, domain in enumerate(existing):
        data.update({f"domains-{index}-id": str(domain.pk), f"domains-{index}-tenant": str(tenant.pk),
                     f"domains-{index}-domain": domain.domain, f"domains-{index}-is_primary": "on"})
    index = len(existing)
    data.update({f"domains-{index}-tenant": str(tenant.pk), f"domains-{index}-domain": new_domain})
    formset_class = inline.get_formset(request, tenant)
    return formset_class(data, instance=tenant, prefix="domains")


@pytest.mark.parametrize(("domain", "message"), [
    ("new tenant.localhost", "not a valid host name"),
    ("b\u00fccher.localhost", "not a valid host name"),
    ("new.localhost.", "not a valid host name"),
    ("new.localhost:8000", "not a valid host name"),
    ("globex.localhost", "already exists"),
    ("GLOBEX.localhost", "already exists"),
])
def test_admin_bad_domain_rejected(world, domain, message):
    formset = _domain_formset(world, domain)

    assert not formset.is_valid()
    errors = formset.errors[-1]["domain"]
    assert message in errors[0], errors


def test_admin_domain_stored_in_lower_case(world):
    formset = _domain_formset(world, "Acme-Second.LOCALHOST")

    assert formset.is_valid(), formset.errors
    formset.save()

    assert Domain.objects.filter(domain="acme-second.localhost", tenant__schema_name="acme").exists()
