"""Issuing CA rotation with an overlap, in a real tenant schema."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from cryptography import x509
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_tenants.utils import schema_context

from audit.services import Actor
from tests.conftest import client_for
from tests.factories import make_csr
from tests.onboarding.helpers import active_certificates, approve_and_issue, onboard

ACTOR = Actor.system("rotation-tests")


def _onboarded_certificate(persona):
    submitted = onboard(persona)
    approve_and_issue(persona.tenant.schema_name, submitted.request_id)
    from pki.models import IssuedCertificate

    with schema_context(persona.tenant.schema_name):
        # The issuing CA is read here, in the tenant's schema, not lazily later.
        return IssuedCertificate.objects.select_related("issuing_ca").get(
            product_id=submitted.product_id, revoked_at__isnull=True)


def _rotate(persona, overlap=timedelta(days=30)):
    from pki.services import rotate_issuing_ca

    with schema_context(persona.tenant.schema_name):
        return rotate_issuing_ca(persona.tenant, actor=ACTOR, overlap=overlap)


def _end_overlap(schema: str, key_id: str) -> None:
    from pki.models import IssuingCA

    with schema_context(schema):
        IssuingCA.objects.filter(key_id=key_id).update(trusted_until=timezone.now() - timedelta(seconds=1))


def _renew(schema: str, certificate, tenant):
    from pki.models import IssuedCertificate
    from pki.services import renew_certificate

    csr, _key = make_csr(certificate.product_id)
    with schema_context(schema):
        return renew_certificate(certificate.serial_hex, csr, tenant=tenant,
                                 source=IssuedCertificate.Source.TUNNEL_RENEWAL, actor=ACTOR)


def test_rotation_retires_old_ca_with_overlap(world):
    from pki.models import IssuingCA

    with schema_context("acme"):
        old_key_id = IssuingCA.objects.get(is_active=True).key_id
    before = timezone.now()

    new_ca = _rotate(world.a, overlap=timedelta(days=10))

    with schema_context("acme"):
        old = IssuingCA.objects.get(key_id=old_key_id)
        assert IssuingCA.objects.get(is_active=True) == new_ca
    assert not old.is_active
    assert old.retired_at >= before
    assert timedelta(days=10) - timedelta(seconds=5) < old.trusted_until - before <= timedelta(days=10, seconds=5)


def test_certificate_after_rotation_comes_from_new_ca(world):
    new_ca = _rotate(world.a)

    certificate = _onboarded_certificate(world.a)

    issued = x509.load_pem_x509_certificate(certificate.certificate_pem.encode())
    new_ca_cert = x509.load_pem_x509_certificate(new_ca.certificate_pem.encode())
    issued.verify_directly_issued_by(new_ca_cert)
    assert certificate.issuing_ca_id == new_ca.pk


def test_crl_distribution_point_names_the_issuing_ca(world):
    certificate = _onboarded_certificate(world.a)

    issued = x509.load_pem_x509_certificate(certificate.certificate_pem.encode())
    points = issued.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    url = points[0].full_name[0].value
    assert url.endswith(f"/api/v1/pki/crl/{certificate.issuing_ca.key_id}")


def test_retired_ca_serves_its_own_crl(world):
    from pki.services import revoke_certificate

    old_certificate = _onboarded_certificate(world.a)
    old_ca = old_certificate.issuing_ca
    _rotate(world.a)
    with schema_context("acme"):
        revoke_certificate(old_certificate, "key_compromise", actor=ACTOR)

    response = client_for(world.a.domain).get(f"/api/v1/pki/crl/{old_ca.key_id}")

    crl = x509.load_der_x509_crl(response.content)
    assert crl.is_signature_valid(x509.load_pem_x509_certificate(old_ca.certificate_pem.encode()).public_key())
    assert crl.get_revoked_certificate_by_serial_number(int(old_certificate.serial_hex, 16)) is not None


def test_crl_of_unknown_ca_returns_404(world):
    response = client_for(world.a.domain).get("/api/v1/pki/crl/" + "ab" * 20)

    assert response.status_code == 404
    assert response.json()["code"] == "issuing_ca_not_found"


def test_crl_of_other_tenants_ca_is_not_served(world):
    from pki.models import IssuingCA

    with schema_context("globex"):
        globex_key_id = IssuingCA.objects.get(is_active=True).key_id

    response = client_for(world.a.domain).get(f"/api/v1/pki/crl/{globex_key_id}")

    assert response.status_code == 404


def test_trust_bundle_holds_both_cas_during_overlap(world):
    old_certificate = _onboarded_certificate(world.a)
    new_ca = _rotate(world.a)

    bundle = x509.load_pem_x509_certificates(client_for(world.a.domain).get("/api/v1/pki/ca").content)

    key_ids = [cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()
               for cert in bundle]
    assert key_ids[0] == new_ca.key_id
    assert old_certificate.issuing_ca.key_id in key_ids
    assert len(bundle) == 3


def test_trust_bundle_drops_old_ca_after_overlap(world):
    old_certificate = _onboarded_certificate(world.a)
    _rotate(world.a)
    _end_overlap("acme", old_certificate.issuing_ca.key_id)

    bundle = x509.load_pem_x509_certificates(client_for(world.a.domain).get("/api/v1/pki/ca").content)

    assert len(bundle) == 2


def test_certificates_of_retired_ca_are_due_for_renewal(world):
    from pki.services import certificates_due_for_renewal

    old_certificate = _onboarded_certificate(world.a)
    _rotate(world.a)

    with schema_context("acme"):
        due = set(certificates_due_for_renewal().values_list("serial_hex", flat=True))

    assert old_certificate.serial_hex in due


def test_renewal_during_overlap_moves_ec_to_new_ca(world):
    old_certificate = _onboarded_certificate(world.a)
    new_ca = _rotate(world.a)

    renewed = _renew("acme", old_certificate, world.a.tenant)

    assert renewed.issuing_ca_id == new_ca.pk
    assert renewed.renewal_of_id == old_certificate.pk
    assert active_certificates("acme", old_certificate.product_id) == [renewed]


def test_renewal_after_overlap_is_refused(world):
    from pki.services import RenewalRefused

    old_certificate = _onboarded_certificate(world.a)
    _rotate(world.a)
    _end_overlap("acme", old_certificate.issuing_ca.key_id)

    with pytest.raises(RenewalRefused) as refused:
        _renew("acme", old_certificate, world.a.tenant)

    assert refused.value.code == "issuing_ca_retired"
    assert active_certificates("acme", old_certificate.product_id) == [old_certificate]


def test_gateway_trusts_retired_ca_during_overlap(world):
    from gateway.records import load_issuing_cas

    old_certificate = _onboarded_certificate(world.a)
    new_ca = _rotate(world.a)

    trusted = load_issuing_cas()

    assert trusted[old_certificate.issuing_ca.key_id][0] == "acme"
    assert trusted[new_ca.key_id][0] == "acme"


def test_gateway_refuses_retired_ca_after_overlap(world):
    from gateway.records import PeerRejected, authorize_peer, load_issuing_cas

    old_certificate = _onboarded_certificate(world.a)
    _rotate(world.a)
    _end_overlap("acme", old_certificate.issuing_ca.key_id)

    assert old_certificate.issuing_ca.key_id not in load_issuing_cas()
    with pytest.raises(PeerRejected) as rejected:
        authorize_peer("acme", old_certificate.serial_hex, old_certificate.product_id)
    assert rejected.value.code == "issuing_ca_retired"


def test_rotation_does_not_touch_other_tenant(world):
    from pki.models import IssuingCA

    with schema_context("globex"):
        before = list(IssuingCA.objects.values_list("key_id", "is_active"))

    _rotate(world.a)

    with schema_context("globex"):
        assert list(IssuingCA.objects.values_list("key_id", "is_active")) == before


def test_rotate_command_reports_new_ca(world):
    from pki.models import IssuingCA

    out = StringIO()

    call_command("rotate_issuing_ca", "acme", "--overlap-days", "7", stdout=out)

    with schema_context("acme"):
        active = IssuingCA.objects.get(is_active=True)
        retired = IssuingCA.objects.filter(is_active=False).latest("retired_at")
    assert active.key_id in out.getvalue()
    assert timedelta(days=6) < retired.trusted_until - timezone.now() <= timedelta(days=7)


def test_rotate_command_rejects_unknown_tenant(world):
    with pytest.raises(CommandError, match=r"No hosted tenant with schema 'nosuch'; hosted tenants: .*acme"):
        call_command("rotate_issuing_ca", "nosuch")


@pytest.mark.parametrize("days", ["-1", "nan", "inf", "100000"])
def test_rotate_command_rejects_overlap_out_of_range(world, days):
    from pki.models import IssuingCA

    with schema_context("acme"):
        before = IssuingCA.objects.count()

    with pytest.raises(CommandError, match="pass a number of days from 0 to"):
        call_command("rotate_issuing_ca", "acme", "--overlap-days", days)

    with schema_context("acme"):
        assert IssuingCA.objects.count() == before


def test_rotate_command_names_retired_ca(world):
    from pki.models import IssuingCA

    with schema_context("acme"):
        old_key_id = IssuingCA.objects.get(is_active=True).key_id
    out = StringIO()

    call_command("rotate_issuing_ca", "acme", "--overlap-days", "2", stdout=out)

    assert f"Issuing CA {old_key_id} is retired and trusted until" in out.getvalue()
