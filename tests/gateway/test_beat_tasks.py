"""The Celery beat entries and the CRL refresh task, run in the test process."""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509
from django.conf import settings
from django.utils import timezone
from django_tenants.utils import schema_context

from pki.tasks import refresh_crls_task


def _active_ca():
    from pki.models import IssuingCA

    return IssuingCA.objects.get(is_active=True)


def _crl_with_age(schema_name: str, seconds: int):
    """Sign the active CA's CRL if needed and back-date it by ``seconds``; return the CA."""
    from pki.services import current_crl_der

    with schema_context(schema_name):
        issuing_ca = _active_ca()
        current_crl_der(issuing_ca)
        issuing_ca.refresh_from_db()
        issuing_ca.crl_built_at = timezone.now() - timedelta(seconds=seconds)
        issuing_ca.save(update_fields=["crl_built_at"])
        return issuing_ca


def test_beat_schedule_names_registered_tasks():
    from config.celery import app

    app.loader.import_default_modules()

    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks, entry["task"]


def test_refresh_crls_task_resigns_aged_crl(world):
    schema_name = world.a.tenant.schema_name
    aged = _crl_with_age(schema_name, settings.ZTSP_CRL_REFRESH_SECONDS + 60)

    refresh_crls_task()

    with schema_context(schema_name):
        refreshed = _active_ca()
    assert refreshed.crl_number == aged.crl_number + 1
    crl = x509.load_der_x509_crl(bytes(refreshed.crl_der))
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == refreshed.crl_number
    assert refreshed.crl_built_at > aged.crl_built_at


def test_refresh_crls_task_keeps_fresh_crl(world):
    schema_name = world.b.tenant.schema_name
    fresh = _crl_with_age(schema_name, 10)

    refresh_crls_task()

    with schema_context(schema_name):
        assert _active_ca().crl_number == fresh.crl_number
