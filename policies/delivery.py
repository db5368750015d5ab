"""Config messages for the tunnel, and the EC's acknowledgements of them.

Runs in the tenant's schema. The tunnel gateway calls :func:`config_message_for`
when an EC sends its hello and :func:`record_config_ack` when it sends ``ack``; the
services call :func:`send_config_after_commit` when a desired document changes.
"""

from __future__ import annotations

import logging

import redis
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from audit.services import Actor, record_event
from onboarding.models import EdgeController
from policies.models import DesiredConfig, PushJob, PushTarget

logger = logging.getLogger(__name__)

# Status values of an EC's ack: ec_client sends "applied"; "ok" is accepted as its synonym.
ACK_OK = ("applied", "ok")
ACK_FAILED = "failed"
MAX_ACK_DETAIL_CHARS = 500


def config_message(version: int, body: dict) -> dict:
    return {"type": "config", "version": version, "body": body}


def config_message_for(controller_id: int, applied_version: int) -> dict | None:
    """Return the ``config`` message for an EC that reported ``applied_version``, or None when it is current.

    A version that differs in either direction gets the desired document: a
    lower one is an EC that was offline, a higher one is an EC reset or moved
    from another tenant whose numbering it still carries.
    """
    desired = DesiredConfig.objects.filter(edge_controller_id=controller_id).values_list("version", "body").first()
    if desired is None or desired[0] == applied_version:
        return None
    return config_message(desired[0], desired[1])


def send_config_after_commit(product_id: str, version: int, body: dict) -> None:
    """Send a ``config`` message to the EC through the push channel once the current transaction commits.

    Delivery is at most once. An EC that misses it gets the document at its
    next hello, because its applied version then differs from the desired one.
    """
    from gateway.push import send_to_ec

    schema_name = connection.schema_name
    message = config_message(version, body)

    def send() -> None:
        try:
            send_to_ec(schema_name, product_id, message)
        except (redis.RedisError, ValueError) as error:
            logger.warning("Config version %d for %s in %s not pushed (%s); the EC gets it at its next hello",
                           version, product_id, schema_name, error)

    transaction.on_commit(send)


def record_config_ack(controller_id: int, product_id: str, *, version: int, status: str, detail: str = "") -> None:
    """Record an EC's ``ack`` of config ``version``: the applied version, the last ack, and push job progress."""
    succeeded = status in ACK_OK
    detail = detail[:MAX_ACK_DETAIL_CHARS]
    now = timezone.now()
    with transaction.atomic():
        DesiredConfig.objects.filter(edge_controller_id=controller_id).update(
            last_ack_version=version, last_ack_status=ACK_FAILED if not succeeded else "applied",
            last_ack_detail=detail, last_ack_at=now,
        )
        if succeeded:
            EdgeController.objects.filter(pk=controller_id).update(applied_config_version=version)
            # A later version still contains the pushed policy unless an admin removed it since.
            targets = PushTarget.objects.filter(edge_controller_id=controller_id, config_version__lte=version)
            new_status, counter = PushTarget.Status.ACKED, "acked"
        else:
            targets = PushTarget.objects.filter(edge_controller_id=controller_id, config_version=version)
            new_status, counter = PushTarget.Status.FAILED, "failed"
        open_targets = list(
            targets.filter(status__in=[PushTarget.Status.SENT, PushTarget.Status.WAITING])
            .select_for_update().values_list("pk", "job_id")
        )
        if open_targets:
            PushTarget.objects.filter(pk__in=[pk for pk, _job in open_targets]).update(status=new_status,
                                                                                       detail=detail)
            for _pk, job_id in open_targets:
                PushJob.objects.filter(pk=job_id).update(**{counter: F(counter) + 1})
        if not succeeded:
            record_event("config.ack_failed", actor=Actor.for_device(product_id), object_type="edge_controller",
                         object_id=product_id, details={"version": version, "detail": detail})
    if succeeded:
        logger.info("EC %s applied config version %d", product_id, version)
    else:
        logger.warning("EC %s failed to apply config version %d: %s", product_id, version, detail)
