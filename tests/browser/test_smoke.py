"""The browser fixture itself: Chromium opens a tenant's sign-in page on the live stack."""

from tests.browser.conftest import screenshot


def test_tenant_sign_in_page_renders(world, live_stack, page):
    page.goto(live_stack.url(world.a.domain) + "/accounts/login/")

    assert page.get_by_label("User name").is_visible()
    assert "Acme" in page.title()
    screenshot(page, "tenant-sign-in")
