"""Key custody: re-encrypting every secret kept at rest under the newest data key.

``ZTSP_DATA_KEYS`` lists Fernet keys, newest first. Values encrypted under any
listed key can be read; new values use the first. Rotating the data key is:

1. generate a key (``rotate_data_keys --generate-key``) and put it first in
   ``ZTSP_DATA_KEYS``, keeping the old key after it, on every process;
2. run ``rotate_data_keys``, which re-encrypts every stored secret under the
   new key (CA keys of the software backend, registered tenant access keys);
3. remove the old key from ``ZTSP_DATA_KEYS`` and restart.

Step 2 may run while the service runs: each row is rewritten in its own
short transaction, and readers accept both keys throughout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import connection, transaction
from django_tenants.utils import schema_context

from audit.services import Actor, record_event
from common import tokens
from pki import signers
from pki.models import IssuingCA
from tenants.models import DeploymentRootCA, Tenant

logger = logging.getLogger(__name__)


@dataclass
class RotationReport:
    root_cas: int = 0
    issuing_cas: int = 0
    tenant_registrations: int = 0
    # Values no configured key opens, as "what id" strings; nothing was written for them.
    unreadable: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.root_cas + self.issuing_cas + self.tenant_registrations


def _rewrap(model, pk, attribute: str, rewrap) -> bool:
    with transaction.atomic():
        row = model.objects.select_for_update().get(pk=pk)
        new_value = rewrap(row, getattr(row, attribute))
        if new_value == getattr(row, attribute):
            return False
        setattr(row, attribute, new_value)
        row.save(update_fields=[attribute])
    return True


def _rewrap_ca_key(ca, reference: str) -> str:
    return signers.backend(ca.key_backend).rewrap(reference)


def _rewrap_registration(_registration, ciphertext: str) -> str:
    return tokens.rotate(ciphertext)


def rotate_data_keys(*, actor: Actor, dry_run: bool = False) -> RotationReport:
    """Re-encrypt every secret at rest under the first key of ``ZTSP_DATA_KEYS``.

    With ``dry_run``, only check that every value opens with the configured keys.
    """
    from msp.models import TenantRegistration

    report = RotationReport()

    def handle(model, pk, attribute, rewrap, label: str, counter: str) -> None:
        try:
            if dry_run:
                row = model.objects.get(pk=pk)
                rewrap(row, getattr(row, attribute))
            else:
                _rewrap(model, pk, attribute, rewrap)
        except tokens.InvalidToken:
            report.unreadable.append(label)
            return
        setattr(report, counter, getattr(report, counter) + 1)

    connection.set_schema_to_public()
    for pk, key_id in DeploymentRootCA.objects.values_list("pk", "key_id"):
        handle(DeploymentRootCA, pk, "private_key_encrypted", _rewrap_ca_key, f"root CA {key_id[:16]}", "root_cas")
    for pk, name in TenantRegistration.objects.values_list("pk", "name"):
        handle(TenantRegistration, pk, "access_key_encrypted", _rewrap_registration,
               f"tenant registration {pk} ({name})", "tenant_registrations")
    for schema_name in Tenant.objects.exclude(schema_name="public").values_list("schema_name", flat=True):
        with schema_context(schema_name):
            for pk, key_id in IssuingCA.objects.values_list("pk", "key_id"):
                handle(IssuingCA, pk, "private_key_encrypted", _rewrap_ca_key,
                       f"issuing CA {key_id[:16]} of {schema_name}", "issuing_cas")
    if not dry_run:
        record_event("data_keys.rotate", actor=actor, object_type="data_keys", object_id="ZTSP_DATA_KEYS",
                     details={"root_cas": report.root_cas, "issuing_cas": report.issuing_cas,
                              "tenant_registrations": report.tenant_registrations,
                              "unreadable": report.unreadable})
        logger.info("Re-encrypted %d secrets under the first data key; %d unreadable", report.total,
                    len(report.unreadable))
    return report
