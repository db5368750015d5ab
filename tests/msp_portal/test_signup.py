"""Sign-up requests, their approval in the vendor admin, password set via the emailed link, sign-in and out."""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from msp.models import MSP, MSPMembership, MSPSignupRequest
from tests.conftest import ADMIN_PASSWORD
from tests.msp_portal.conftest import field_errors, portal_client

SIGNUP_URL = "/portal/signup/"
LOGIN_URL = "/portal/login/"
NEW_PASSWORD = "a-long-new-password-for-tests"


def signup_data(**overrides) -> dict:
    suffix = uuid.uuid4().hex[:8]
    return {"organisation_name": f"Org {suffix}", "contact_name": "Ada Lovelace",
            "email": f"ada-{suffix}@example.com", "username": f"ada-{suffix}", **overrides}


def approve_in_admin(world, signup: MSPSignupRequest):
    admin_client = portal_client(world.vendor_admin)
    return admin_client.post("/admin/msp/mspsignuprequest/",
                             {"action": "approve", "_selected_action": [signup.pk]}, follow=True)


def test_signup_form_renders_with_labels(world):
    response = portal_client().get(SIGNUP_URL)

    assert response.status_code == 200
    body = response.content.decode()
    for field in ("organisation_name", "contact_name", "email", "username"):
        assert f'for="id_{field}"' in body
    assert "csrfmiddlewaretoken" in body


def test_signup_stores_pending_request(world):
    data = signup_data()

    response = portal_client().post(SIGNUP_URL, data)

    assert response.status_code == 200
    assert data["email"] in response.content.decode()
    signup = MSPSignupRequest.objects.get(username=data["username"])
    assert signup.status == MSPSignupRequest.Status.PENDING
    assert signup.organisation_name == data["organisation_name"]
    assert not MSP.objects.filter(name=data["organisation_name"]).exists()


def test_signup_reports_every_missing_field(world):
    response = portal_client().post(SIGNUP_URL, {})

    errors = field_errors(response)
    assert set(errors) == {"organisation_name", "contact_name", "email", "username"}
    assert response.content.decode().count('class="errorlist') >= 4


def test_signup_reports_invalid_email_and_username(world):
    response = portal_client().post(SIGNUP_URL, signup_data(email="not-an-email", username="bad name!"))

    errors = field_errors(response)
    assert "email" in errors
    assert "username" in errors
    assert not MSPSignupRequest.objects.filter(username="bad name!").exists()


def test_signup_rejects_taken_username_and_organisation(world):
    data = signup_data(organisation_name=world.a.msp.name, username=world.a.msp_user.username)

    response = portal_client().post(SIGNUP_URL, data)

    errors = field_errors(response)
    assert world.a.msp.name in errors["organisation_name"][0]
    assert "taken" in errors["username"][0]


def test_signup_rejects_username_of_pending_request(world):
    first = signup_data()
    portal_client().post(SIGNUP_URL, first)

    response = portal_client().post(SIGNUP_URL, signup_data(username=first["username"]))

    assert "username" in field_errors(response)
    assert MSPSignupRequest.objects.filter(username=first["username"]).count() == 1


def test_admin_approve_creates_msp_user_and_emails_link(world, django_capture_on_commit_callbacks):
    data = signup_data()
    portal_client().post(SIGNUP_URL, data)
    signup = MSPSignupRequest.objects.get(username=data["username"])

    with django_capture_on_commit_callbacks(execute=True):
        response = approve_in_admin(world, signup)

    assert response.status_code == 200
    signup.refresh_from_db()
    assert signup.status == MSPSignupRequest.Status.APPROVED
    assert signup.decided_by == world.vendor_admin
    user = get_user_model().objects.get(username=data["username"])
    assert not user.has_usable_password()
    assert user.email == data["email"]
    assert MSPMembership.objects.get(user=user).msp == signup.msp
    assert signup.msp.name == data["organisation_name"]

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [data["email"]]
    assert data["username"] in message.body
    link = re.search(r"http://localhost(/portal/password-reset/\S+/)", message.body)
    assert link is not None, message.body

    # The link sets the password, and the new user can then sign in.
    client = portal_client()
    form_page = client.get(link.group(1), follow=True)
    assert form_page.context["validlink"]
    done = client.post(form_page.redirect_chain[-1][0],
                       {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}, follow=True)
    assert "Password set" in done.content.decode()
    signed_in = client.post(LOGIN_URL, {"username": data["username"], "password": NEW_PASSWORD}, follow=True)
    assert signed_in.redirect_chain[-1][0] == "/portal/"
    assert data["organisation_name"] in signed_in.content.decode()


def test_admin_approve_twice_reports_error(world, django_capture_on_commit_callbacks):
    data = signup_data()
    portal_client().post(SIGNUP_URL, data)
    signup = MSPSignupRequest.objects.get(username=data["username"])
    with django_capture_on_commit_callbacks(execute=True):
        approve_in_admin(world, signup)

    response = approve_in_admin(world, signup)

    assert "already approved" in response.content.decode()
    assert MSP.objects.filter(name=data["organisation_name"]).count() == 1


def test_admin_reject_creates_nothing(world):
    data = signup_data()
    portal_client().post(SIGNUP_URL, data)
    signup = MSPSignupRequest.objects.get(username=data["username"])

    portal_client(world.vendor_admin).post("/admin/msp/mspsignuprequest/",
                                           {"action": "reject", "_selected_action": [signup.pk]})

    signup.refresh_from_db()
    assert signup.status == MSPSignupRequest.Status.REJECTED
    assert not get_user_model().objects.filter(username=data["username"]).exists()
    assert len(mail.outbox) == 0


def test_login_page_signs_in_msp_user(world):
    client = portal_client()

    response = client.post(LOGIN_URL, {"username": world.a.msp_user.username, "password": ADMIN_PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/portal/"


def test_login_wrong_password_reports_error(world):
    response = portal_client().post(LOGIN_URL, {"username": world.a.msp_user.username, "password": "wrong"})

    assert response.status_code == 200
    assert "wrong" in response.content.decode()


def test_logout_signs_out(world, client_a):
    response = client_a.post("/portal/logout/")

    assert response.status_code == 302
    assert client_a.get("/portal/").status_code == 302


@pytest.mark.parametrize("path", ["/portal/", "/portal/claim/", "/portal/products/", "/portal/tenants/",
                                  "/portal/tokens/"])
def test_pages_redirect_anonymous_to_login(world, path):
    response = portal_client().get(path)

    assert response.status_code == 302
    assert response["Location"].startswith(f"{LOGIN_URL}?next=")


def test_pages_forbid_user_without_msp(world):
    response = portal_client(world.vendor_admin).get("/portal/")

    assert response.status_code == 403


def test_password_reset_sends_link_to_msp_user(world):
    user = world.a.msp_user
    user.email = "a-user@example.com"
    user.save(update_fields=["email"])

    response = portal_client().post("/portal/password-reset/", {"email": "a-user@example.com"}, follow=True)

    assert response.redirect_chain[-1][0] == "/portal/password-reset/sent/"
    assert len(mail.outbox) == 1
    assert "/portal/password-reset/" in mail.outbox[0].body


def test_password_reset_invalid_email_reported(world):
    response = portal_client().post("/portal/password-reset/", {"email": "nope"})

    assert response.status_code == 200
    assert "email" in response.context["form"].errors
