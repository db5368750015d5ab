"""Renewal reminders: ``renew_due`` messages to the online ECs whose certificate should be renewed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

from django.db import connection

from gateway.push import send_to_ec

# Certificates read per tenant and run, soonest expiry first.
# TODO: a tenant with more due certificates than this reaches the rest only
# after the first ones are renewed, because offline ECs stay at the front.
MAX_REMINDERS_PER_TENANT = 10_000


@dataclass(frozen=True)
class ReminderCounts:
    due: int
    online: int
    # Reminders that at least one gateway received; the EC may have gone offline since.
    published: int


def send_renewal_reminders() -> ReminderCounts:
    """Send ``renew_due`` through the push channel to each online EC of the current tenant that is due.

    A certificate is due when it expires within ZTSP_EC_RENEW_BEFORE_DAYS or
    comes from a retired issuing CA. An offline EC is skipped: it gets the
    reminder on a later run, and the EC agent also renews on its own.
    """
    from onboarding.models import EdgeController
    from pki.models import IssuingCA
    from pki.services import certificates_due_for_renewal

    due = list(certificates_due_for_renewal(limit=MAX_REMINDERS_PER_TENANT))
    online_ids = set(
        EdgeController.objects.filter(pk__in={certificate.edge_controller_id for certificate in due}, online=True)
        .values_list("pk", flat=True)
    )
    retired_ca_ids = set(IssuingCA.objects.filter(is_active=False).values_list("pk", flat=True))

    online = published = 0
    for certificate in due:
        if certificate.edge_controller_id not in online_ids:
            continue
        online += 1
        reason = "issuing_ca_retired" if certificate.issuing_ca_id in retired_ca_ids else "expiring"
        not_after = certificate.not_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = {"type": "renew_due", "not_after": not_after, "reason": reason}
        if send_to_ec(connection.schema_name, certificate.product_id, message):
            published += 1
    return ReminderCounts(due=len(due), online=online, published=published)
