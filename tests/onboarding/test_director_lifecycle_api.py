"""Certificate lifecycle through the Director API: list an EC's certificates, revoke, decommission."""

from __future__ import annotations

from cryptography import x509
from django_tenants.utils import schema_context

from tests.conftest import client_for
from tests.onboarding.helpers import CONTROLLERS_URL, active_certificates, approve_and_issue, basic, onboard


def _as_admin(persona, host: str | None = None):
    client = client_for(host or persona.domain)
    client.credentials(**basic(persona.tenant_admin_username))
    return client


def _onboarded(persona):
    submitted = onboard(persona)
    approve_and_issue(persona.tenant.schema_name, submitted.request_id)
    return submitted


def _revoke_url(product_id: str) -> str:
    return f"{CONTROLLERS_URL}/{product_id}/revoke-certificate"


def test_revoke_marks_active_certificate_revoked(world):
    ec = _onboarded(world.a)
    serial = active_certificates("acme", ec.product_id)[0].serial_hex

    response = _as_admin(world.a).post(_revoke_url(ec.product_id), {"reason": "key_compromise"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["serial"] == serial
    assert response.json()["revocation_reason"] == "key_compromise"
    assert active_certificates("acme", ec.product_id) == []


def test_revoked_serial_is_listed_on_the_crl(world):
    ec = _onboarded(world.a)
    serial = active_certificates("acme", ec.product_id)[0].serial_hex
    _as_admin(world.a).post(_revoke_url(ec.product_id), {"reason": "key_compromise"}, format="json")

    crl = x509.load_der_x509_crl(client_for(world.a.domain).get("/api/v1/pki/crl").content)

    entry = crl.get_revoked_certificate_by_serial_number(int(serial, 16))
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise


def test_revoke_with_unknown_reason_is_refused(world):
    ec = _onboarded(world.a)

    response = _as_admin(world.a).post(_revoke_url(ec.product_id), {"reason": "superseded"}, format="json")

    assert response.status_code == 400
    assert "use key_compromise or cessation_of_operation" in response.json()["errors"]["reason"][0]
    assert len(active_certificates("acme", ec.product_id)) == 1


def test_revoke_without_active_certificate_returns_409(world):
    pending = onboard(world.a)

    response = _as_admin(world.a).post(_revoke_url(pending.product_id), {"reason": "key_compromise"},
                                       format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "no_active_certificate"


def test_revoke_of_other_tenants_ec_returns_404(world):
    at_globex = _onboarded(world.b)

    response = _as_admin(world.a).post(_revoke_url(at_globex.product_id), {"reason": "key_compromise"},
                                       format="json")

    assert response.status_code == 404
    assert response.json()["code"] == "edge_controller_not_found"
    assert len(active_certificates("globex", at_globex.product_id)) == 1


def test_revoke_with_other_tenants_admin_is_refused(world):
    ec = _onboarded(world.a)
    client = client_for(world.a.domain)
    client.credentials(**basic(world.b.tenant_admin_username))

    response = client.post(_revoke_url(ec.product_id), {"reason": "key_compromise"}, format="json")

    assert response.status_code in (401, 403)
    assert len(active_certificates("acme", ec.product_id)) == 1


def test_revoke_without_credentials_returns_401(world):
    ec = _onboarded(world.a)

    response = client_for(world.a.domain).post(_revoke_url(ec.product_id), {"reason": "key_compromise"},
                                               format="json")

    assert response.status_code == 401
    assert len(active_certificates("acme", ec.product_id)) == 1


def test_decommission_revokes_for_cessation_of_operation(world):
    from pki.models import IssuedCertificate

    ec = _onboarded(world.a)

    response = _as_admin(world.a).post(f"{CONTROLLERS_URL}/{ec.product_id}/decommission",
                                       {"reason": "returned to stock"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "decommissioned"
    with schema_context("acme"):
        reasons = set(IssuedCertificate.objects.filter(product_id=ec.product_id)
                      .values_list("revocation_reason", flat=True))
    assert reasons == {"cessation_of_operation"}


def test_second_decommission_returns_409(world):
    ec = _onboarded(world.a)
    client = _as_admin(world.a)
    client.post(f"{CONTROLLERS_URL}/{ec.product_id}/decommission", {}, format="json")

    response = client.post(f"{CONTROLLERS_URL}/{ec.product_id}/decommission", {}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "already_decommissioned"


def test_certificate_list_shows_reenrollment_superseding_old_key(world):
    first = _onboarded(world.a)
    again = onboard(world.a, first.product_id)
    approve_and_issue("acme", again.request_id)

    response = _as_admin(world.a).get(f"{CONTROLLERS_URL}/{first.product_id}/certificates")

    assert response.status_code == 200
    newest, oldest = response.json()
    assert newest["request_id"] == again.request_id
    assert newest["revoked_at"] is None
    assert oldest["request_id"] == first.request_id
    assert oldest["revocation_reason"] == "superseded"


def test_certificate_list_of_unknown_ec_returns_404(world):
    response = _as_admin(world.a).get(f"{CONTROLLERS_URL}/NOPE:00000000-0000-0000-0000-000000000000/certificates")

    assert response.status_code == 404
