"""MSP accounts: the MSP itself, its users and its API tokens."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from audit.services import Actor, record_event
from common import tokens
from msp.models import MSP, MSPApiToken, MSPMembership

logger = logging.getLogger(__name__)

API_TOKEN_PREFIX = "ztsp_msp"


class TokenRejected(Exception):
    pass


class MSPRejected(ValueError):
    def __init__(self, code: str, detail: str, *, field: str):
        self.code = code
        self.detail = detail
        self.field = field
        super().__init__(detail)


# Writes of last_used_at are skipped when the stored time is this recent.
LAST_USED_WRITE_INTERVAL = timedelta(seconds=60)


@transaction.atomic
def create_msp(name: str, *, actor: Actor, slug: str | None = None) -> MSP:
    """Create an MSP; the slug (used in URLs) is made from the name unless given."""
    name = name.strip()
    slug = slugify(slug or name)[:63]
    if not name or not slug:
        raise MSPRejected("invalid_slug", f"MSP name {name!r} gives no usable slug; use letters or digits, "
                          "or give a slug.", field="slug")
    if MSP.objects.filter(name=name).exists():
        raise MSPRejected("duplicate_name", f"An MSP named {name!r} already exists.", field="name")
    if MSP.objects.filter(slug=slug).exists():
        raise MSPRejected("duplicate_slug", f"The slug {slug!r} is taken by another MSP; give another slug.",
                          field="slug")
    msp = MSP.objects.create(name=name, slug=slug)
    record_event("msp.create", actor=actor, object_type="msp", object_id=msp.slug, msp_id=msp.pk)
    logger.info("Created MSP %s", msp.slug)
    return msp


@transaction.atomic
def add_msp_user(msp: MSP, username: str, *, actor: Actor, password: str | None = None,
                 email: str = ""):
    """Create a user who acts for ``msp``; without a password the user cannot sign in yet."""
    user = get_user_model().objects.create_user(username=username, email=email, password=password)
    MSPMembership.objects.create(user=user, msp=msp)
    record_event("msp.user.create", actor=actor, object_type="user", object_id=username, msp_id=msp.pk)
    return user


@transaction.atomic
def create_api_token(msp: MSP, name: str, *, actor: Actor) -> tuple[MSPApiToken, str]:
    """Create an MSP API token; return the row and the token, which is shown only now."""
    new_key = tokens.make_key(API_TOKEN_PREFIX)
    token = MSPApiToken.objects.create(
        msp=msp, name=name, key_id=new_key.key_id, key_hash=new_key.key_hash, created_by_id=actor.user_id
    )
    record_event("msp.token.create", actor=actor, object_type="msp_api_token", object_id=token.key_id,
                 msp_id=msp.pk, details={"name": name})
    return token, new_key.plaintext


@transaction.atomic
def revoke_api_token(token: MSPApiToken, *, actor: Actor) -> None:
    updated = MSPApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if updated:
        record_event("msp.token.revoke", actor=actor, object_type="msp_api_token", object_id=token.key_id,
                     msp_id=token.msp_id)


def authenticate_api_token(presented: str) -> MSPApiToken:
    """Return the active token matching ``presented`` or raise :class:`TokenRejected`."""
    key_id = tokens.split_key(API_TOKEN_PREFIX, presented)
    if key_id is None:
        raise TokenRejected("malformed")
    token = MSPApiToken.objects.select_related("msp").filter(key_id=key_id).first()
    if token is None or not tokens.key_matches(presented, token.key_hash):
        raise TokenRejected("unknown")
    if token.revoked_at is not None:
        raise TokenRejected("revoked")
    if not token.msp.is_active:
        raise TokenRejected("msp_inactive")
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_WRITE_INTERVAL:
        MSPApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
