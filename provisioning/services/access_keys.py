"""Provisioning access keys: the keys in EC firmware that authorise ZTP lookups."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from audit.services import Actor, record_event
from common import tokens
from provisioning.models import ProvisioningAccessKey

logger = logging.getLogger(__name__)

ACCESS_KEY_PREFIX = "ztsp_pk"
LAST_USED_WRITE_INTERVAL = timedelta(seconds=60)


class AccessKeyRejected(Exception):
    """The presented key is missing, unknown, revoked or expired; ``reason`` names which."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@transaction.atomic
def create_access_key(name: str, *, actor: Actor, expires_at: datetime | None = None, allowed_models: str = ""
                      ) -> tuple[ProvisioningAccessKey, str]:
    """Create a provisioning access key; return the row and the key, which is shown only now.

    ``allowed_models`` (comma-separated model numbers) restricts the key to
    products of those models; empty means any model.
    """
    models = normalize_model_list(allowed_models)
    new_key = tokens.make_key(ACCESS_KEY_PREFIX)
    access_key = ProvisioningAccessKey.objects.create(
        name=name,
        key_id=new_key.key_id,
        key_hash=new_key.key_hash,
        expires_at=expires_at,
        allowed_models=",".join(models),
        created_by_id=actor.user_id,
    )
    record_event("access_key.create", actor=actor, object_type="provisioning_access_key",
                 object_id=access_key.key_id, details={"name": name})
    logger.info("Created provisioning access key %s (%s)", access_key.key_id, name)
    return access_key, new_key.plaintext


@transaction.atomic
def revoke_access_key(access_key: ProvisioningAccessKey, *, actor: Actor) -> ProvisioningAccessKey:
    """Revoke ``access_key``: every later lookup with it gets 401. Revoking twice is a no-op."""
    access_key = ProvisioningAccessKey.objects.select_for_update().get(pk=access_key.pk)
    if access_key.revoked_at is None:
        access_key.revoked_at = timezone.now()
        access_key.save(update_fields=["revoked_at"])
        record_event("access_key.revoke", actor=actor, object_type="provisioning_access_key",
                     object_id=access_key.key_id)
        logger.info("Revoked provisioning access key %s", access_key.key_id)
    return access_key


def normalize_model_list(text: str) -> list[str]:
    """Return the model numbers of a comma-separated list, upper-cased, or raise ValueError for a bad one."""
    from provisioning.product_ids import MODEL_NUMBER_RE

    models = []
    for part in (text or "").split(","):
        model = part.strip().upper()
        if not model:
            continue
        if not MODEL_NUMBER_RE.match(model):
            raise ValueError(f"invalid model number {model!r} in the allowed models")
        if model not in models:
            models.append(model)
    return models


def key_allows_model(access_key: ProvisioningAccessKey, model_number: str) -> bool:
    """Return whether ``access_key`` may look up products of ``model_number``."""
    return not access_key.allowed_models or model_number in access_key.allowed_models.split(",")


def authenticate_access_key(presented: str | None) -> ProvisioningAccessKey:
    """Return the usable key matching ``presented`` or raise :class:`AccessKeyRejected`."""
    if not presented:
        raise AccessKeyRejected("missing")
    key_id = tokens.split_key(ACCESS_KEY_PREFIX, presented)
    if key_id is None:
        raise AccessKeyRejected("unknown")
    access_key = ProvisioningAccessKey.objects.filter(key_id=key_id).first()
    if access_key is None or not tokens.key_matches(presented, access_key.key_hash):
        raise AccessKeyRejected("unknown")
    if access_key.revoked_at is not None:
        raise AccessKeyRejected("revoked")
    now = timezone.now()
    if access_key.expires_at is not None and access_key.expires_at <= now:
        raise AccessKeyRejected("expired")
    # One key serves a whole fleet: record its use at most once a minute.
    if access_key.last_used_at is None or now - access_key.last_used_at > LAST_USED_WRITE_INTERVAL:
        ProvisioningAccessKey.objects.filter(pk=access_key.pk).update(last_used_at=now)
    return access_key
