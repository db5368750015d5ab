"""MSP sign-up requests: submitted on the public portal, approved or rejected by the vendor in the admin."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordResetForm
from django.db import IntegrityError, transaction
from django.urls import get_urlconf, set_urlconf
from django.utils import timezone
from django.utils.text import slugify

from audit.services import Actor, record_event
from msp.models import MSP, MSPSignupRequest
from msp.services.accounts import MSPRejected, add_msp_user, create_msp

logger = logging.getLogger(__name__)

PASSWORD_SET_SUBJECT_TEMPLATE = "msp/email/password_set_subject.txt"
PASSWORD_SET_EMAIL_TEMPLATE = "msp/email/password_set_email.txt"


class SignupRejected(ValueError):
    """A sign-up request that cannot be stored or approved; ``field`` names the form field at fault."""

    def __init__(self, code: str, detail: str, *, field: str | None = None):
        self.code = code
        self.detail = detail
        self.field = field
        super().__init__(detail)


def check_signup_request(*, organisation_name: str, username: str) -> list[SignupRejected]:
    """Return every conflict of a new request with existing MSPs, users and pending requests."""
    problems: list[SignupRejected] = []
    name = organisation_name.strip()
    if MSP.objects.filter(name__iexact=name).exists() or MSP.objects.filter(slug=slugify(name)[:63]).exists():
        problems.append(SignupRejected(
            "duplicate_organisation",
            f"An MSP named {name!r} already exists; if it is yours, ask a colleague who uses the portal to "
            "contact the vendor, or use another name.",
            field="organisation_name",
        ))
    user_model = get_user_model()
    username_taken = user_model.objects.filter(**{f"{user_model.USERNAME_FIELD}__iexact": username}).exists()
    pending = MSPSignupRequest.objects.filter(username__iexact=username,
                                              status=MSPSignupRequest.Status.PENDING).exists()
    if username_taken or pending:
        problems.append(SignupRejected(
            "duplicate_username", f"The user name {username!r} is taken; choose another one.", field="username",
        ))
    return problems


def submit_signup_request(*, organisation_name: str, contact_name: str, email: str, username: str,
                          actor: Actor) -> MSPSignupRequest:
    """Store a pending sign-up request, or raise the first :class:`SignupRejected` conflict."""
    problems = check_signup_request(organisation_name=organisation_name, username=username)
    if problems:
        raise problems[0]
    try:
        with transaction.atomic():
            signup = MSPSignupRequest.objects.create(
                organisation_name=organisation_name.strip(), contact_name=contact_name.strip(),
                email=email.strip(), username=username.strip(),
            )
            record_event("msp.signup.submit", actor=actor, object_type="msp_signup_request",
                         object_id=str(signup.pk), details={"organisation_name": signup.organisation_name,
                                                            "username": signup.username})
    except IntegrityError as error:
        # A concurrent request for the same user name won the unique constraint.
        raise SignupRejected("duplicate_username", f"The user name {username!r} is taken; choose another one.",
                             field="username") from error
    logger.info("MSP sign-up request %s from %r (user %s)", signup.pk, signup.organisation_name, signup.username)
    return signup


class _InvitationForm(PasswordResetForm):
    """Django's password reset email, sent to one given user even though their password is unusable.

    PasswordResetForm.get_users skips users without a usable password, which
    is exactly the state of a newly approved MSP user.
    """

    def __init__(self, user):
        super().__init__(data={"email": user.email})
        self._user = user

    def get_users(self, email):
        return [self._user]


def send_password_set_email(user, *, domain: str, use_https: bool) -> None:
    """Email ``user`` a one-time link to set their password, made by Django's password reset tokens."""
    form = _InvitationForm(user)
    form.is_valid()
    # The portal's URLs exist only in the Provision Server's URLconf, and this
    # may run outside any request (after the commit, or from a command).
    previous_urlconf = get_urlconf()
    set_urlconf(settings.PUBLIC_SCHEMA_URLCONF)
    try:
            form.save(domain_override=domain, use_https=use_https,
                  subject_template_name=PASSWORD_SET_SUBJECT_TEMPLATE, email_template_name=PASSWORD_SET_EMAIL_TEMPLATE,
                  extra_email_context={"valid_days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400)})
    finally:
        set_urlconf(previous_urlconf)
    logger.info("Sent the password-set email to MSP user %s", user.get_username())


@transaction.atomic
def approve_signup_request(signup: MSPSignupRequest, *, actor: Actor, domain: str, use_https: bool = False) -> MSP:
    """Create the MSP and its user (without a usable password) and email the user a password-set link.

    ``domain`` is the host (and port) of the portal that the link points to.
    The email is sent after the transaction commits, so a failed approval
    sends nothing.
    """
    locked = MSPSignupRequest.objects.select_for_update().get(pk=signup.pk)
    if locked.status != MSPSignupRequest.Status.PENDING:
        raise SignupRejected("not_pending", f"Sign-up request {locked.pk} is already {locked.status}.")
    problems = check_signup_request(organisation_name=locked.organisation_name, username=locked.username)
    # The request itself is pending under this user name; only an existing user is a conflict now.
    problems = [problem for problem in problems if problem.field != "username"]
    if get_user_model().objects.filter(username__iexact=locked.username).exists():
        problems.append(SignupRejected("duplicate_username",
                                       f"The user name {locked.username!r} was taken meanwhile; reject the "
                                       "request and ask for another user name.", field="username"))
    if problems:
        raise problems[0]

    try:
        msp = create_msp(locked.organisation_name, actor=actor)
    except MSPRejected as error:
        raise SignupRejected(error.code, error.detail, field="organisation_name") from error
    user = add_msp_user(msp, locked.username, actor=actor, email=locked.email)
    user.first_name = locked.contact_name[:150]
    user.save(update_fields=["first_name"])

    locked.status = MSPSignupRequest.Status.APPROVED
    locked.decided_at = timezone.now()
    locked.decided_by_id = actor.user_id
    locked.msp = msp
    locked.save(update_fields=["status", "decided_at", "decided_by", "msp"])
    record_event("msp.signup.approve", actor=actor, object_type="msp_signup_request", object_id=str(locked.pk),
                 msp_id=msp.pk, details={"username": locked.username})
    transaction.on_commit(lambda: send_password_set_email(user, domain=domain, use_https=use_https))
    logger.info("Approved MSP sign-up request %s: MSP %s, user %s", locked.pk, msp.slug, locked.username)
    signup.refresh_from_db()
    return msp


@transaction.atomic
def reject_signup_request(signup: MSPSignupRequest, *, actor: Actor) -> None:
    """Mark a pending request rejected; nothing is created and no email is sent."""
    updated = MSPSignupRequest.objects.filter(pk=signup.pk, status=MSPSignupRequest.Status.PENDING).update(
        status=MSPSignupRequest.Status.REJECTED, decided_at=timezone.now(), decided_by_id=actor.user_id,
    )
    if not updated:
        raise SignupRejected("not_pending", f"Sign-up request {signup.pk} is no longer pending.")
    record_event("msp.signup.reject", actor=actor, object_type="msp_signup_request", object_id=str(signup.pk))
    logger.info("Rejected MSP sign-up request %s", signup.pk)
