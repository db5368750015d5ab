"""The MSP portal in Chromium: from a sign-up request to a mapped product and its route."""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.db import connection
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from msp.models import MSPSignupRequest
from tests.browser.conftest import screenshot
from tests.conftest import ADMIN_PASSWORD
from tests.factories import VENDOR

NEW_PASSWORD = "browser-test-password-2024"
# Creating a hosted tenant runs the tenant migrations, which takes seconds.
TENANT_CREATION_TIMEOUT_MS = 120_000


def password_set_path(user) -> str:
    # The live server prints its email to its own log, so the test makes the
    # same link with the same token generator instead of reading that log.
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return f"/portal/password-reset/{uid}/{default_token_generator.make_token(user)}/"


@pytest.fixture
def orm_beside_playwright(page, monkeypatch):
    """Allow ORM calls in a test that drives Playwright, and close their connection afterwards.

    Playwright's sync API runs an event loop in the test's thread, so Django
    refuses ORM calls there, although nothing else uses the connection. Under
    that loop Django opens a second connection, which the test database's
    teardown does not close, so it would block dropping the database.
    """
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    yield
    connection.close()


def test_msp_portal_from_signup_to_route(world, live_stack, committed, page, browser, orm_beside_playwright):
    from msp.services.products import allocate_products, numbered
    from tests.msp.conftest import imported_products

    base = live_stack.url()
    suffix = uuid.uuid4().hex[:8]
    organisation = f"Browser Org {suffix}"
    username = f"browser-{suffix}"

    # Sign-up request.
    page.goto(f"{base}/portal/signup/")
    page.get_by_label("Organisation name").fill(organisation)
    page.get_by_label("Contact name").fill("Grace Hopper")
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Requested user name").fill(username)
    screenshot(page, "msp-signup")
    page.get_by_role("button", name="Send request").click()
    page.get_by_role("heading", name="Request sent").wait_for()
    signup = MSPSignupRequest.objects.get(username=username)

    # The vendor approves it in the admin, in a browser context of its own.
    vendor = browser.new_context().new_page()
    vendor.goto(f"{base}/admin/login/?next=/admin/msp/mspsignuprequest/")
    vendor.get_by_label("Username").fill(world.vendor_admin.username)
    vendor.get_by_label("Password").fill(ADMIN_PASSWORD)
    vendor.get_by_role("button", name="Log in").click()
    vendor.locator(f"input[name=_selected_action][value='{signup.pk}']").check()
    vendor.locator("select[name=action]").select_option("approve")
    vendor.get_by_role("button", name="Go").click()
    vendor.get_by_text(f"Approved {organisation}").wait_for()
    screenshot(vendor, "msp-admin-signup-approved")
    vendor.context.close()

    # Set the password with the link the approval email carries.
    user = get_user_model().objects.get(username=username)
    assert not user.has_usable_password()
    page.goto(base + password_set_path(user))
    page.get_by_label("New password:", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password confirmation").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set password").click()
    page.get_by_role("heading", name="Password set").wait_for()

    # Sign in.
    page.goto(f"{base}/portal/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()

    # The vendor allocates three products; the MSP claims them by paste.
    user.refresh_from_db()
    msp = user.msp_membership.msp
    product_ids = imported_products(3)
    allocate_products(msp, numbered(product_ids), actor=VENDOR)
    page.goto(f"{base}/portal/")
    assert page.locator("#count-allocated").inner_text() == "3"
    screenshot(page, "msp-dashboard")

    page.get_by_role("link", name="Claim", exact=True).click()
    page.get_by_label("Or paste Product IDs").fill("\n".join([*product_ids, "EC100:not-a-uuid"]))
    page.get_by_role("button", name="Claim").click()
    page.get_by_role("heading", name="Claim result").wait_for()
    assert "3 changed" in page.locator("#totals").inner_text()
    assert "1 rejected" in page.locator("#totals").inner_text()
    screenshot(page, "msp-claim-result")

    # Create a hosted tenant; its access key is shown once.
    tenant_name = f"Browser Tenant {suffix}"
    page.get_by_role("link", name="Tenants", exact=True).click()
    page.get_by_label("Tenant name").first.fill(tenant_name)
    page.get_by_role("button", name="Create tenant").click()
    page.get_by_role("heading", name="Tenant created").wait_for(timeout=TENANT_CREATION_TIMEOUT_MS)
    assert page.locator("#access-key").inner_text().startswith("ztsp_tk_")
    screenshot(page, "msp-tenant-created")
    page.get_by_role("link", name="Back to tenants").click()
    assert tenant_name in page.content()
    screenshot(page, "msp-tenants")

    # Map two of the ticked products to it.
    page.get_by_role("link", name="Products", exact=True).click()
    for product_id in product_ids[:2]:
        page.get_by_label(f"Select {product_id}").check()
    page.get_by_label("Tenant for the ticked products").select_option(label=tenant_name)
    page.get_by_role("button", name="Map ticked to tenant").click()
    page.get_by_text(f"Mapped 2 products to {tenant_name}").wait_for()
    screenshot(page, "msp-products")

    # The product's route names the new tenant's Director.
    page.get_by_role("link", name=product_ids[0]).click()
    route = page.locator("#route-result").inner_text()
    assert re.search(r"200", route), route
    assert tenant_name in page.locator("#route-reasons").inner_text()
    screenshot(page, "msp-product-route")

    # The API tokens page creates a token and shows it once.
    page.get_by_role("link", name="API tokens", exact=True).click()
    page.get_by_label("Token name").fill("browser")
    page.get_by_role("button", name="Create token").click()
    assert page.locator("#api-token").inner_text().startswith("ztsp_msp_")
    page.get_by_role("link", name="Back to API tokens").click()
    screenshot(page, "msp-tokens")
