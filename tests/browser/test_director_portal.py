"""The Director portal in Chromium: approve, watch the live status, revoke and decommission.

The tenant pages declare ``Content-Security-Policy: script-src 'self'`` in a
meta element, so the live status must work from the static script alone, and
the test fails on any CSP violation that Chromium reports.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from django_tenants.utils import schema_context
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.conftest import ADMIN_PASSWORD
from tests.factories import make_csr, new_product_id


def _in_thread(function, *args, **kwargs):
    """Run a database call in another thread, because Django raises SynchronousOnlyOperation in this one.

    Playwright's sync API runs an event loop in the test's thread.
    """
    from django.db import connection

    def run():
        try:
            return function(*args, **kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def _submit_pending(count: int) -> list[str]:
    from onboarding.services import submit_onboard_request

    product_ids = []
    with schema_context("acme"):
        for _ in range(count):
            product_id = new_product_id()
            csr, _key = make_csr(product_id)
            submit_onboard_request(product_id, csr, {"firmware": "2.4.1", "site": "lab"},
                                   source_address="127.0.0.1")
            product_ids.append(product_id)
    return product_ids


def _set_tunnel(product_id: str, **fields) -> None:
    from onboarding.models import EdgeController

    with schema_context("acme"):
        EdgeController.objects.filter(product_id=product_id).update(**fields)


def _collect_csp_violations(page, csp_violations: list[str]) -> None:
    page.on("console", lambda message: csp_violations.append(message.text)
            if "Content Security Policy" in message.text else None)


def _wait_for_onboarded_rows(page, product_ids: list[str], timeout: float = 60) -> None:
    """Reload until the worker has issued the certificates and the rows appear in the onboarded list."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = page.locator("#onboarded tr[data-product-id]")
        shown = {rows.nth(index).get_attribute("data-product-id") for index in range(rows.count())}
        if set(product_ids) <= shown:
            return
        time.sleep(0.5)
        page.reload()
    raise AssertionError(f"{product_ids} did not reach the onboarded list within {timeout} s")


def test_director_portal_flow(world, live_stack, committed, page):
    from django.utils import timezone

    first, second = _in_thread(_submit_pending, 2)
    tag = f"site-{uuid.uuid4().hex[:6]}"
    csp_violations: list[str] = []
    _collect_csp_violations(page, csp_violations)
    base = live_stack.url(world.a.domain)

    page.goto(base + "/")
    page.get_by_label("User name").fill(world.a.tenant_admin_username)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Edge Controllers", level=1)).to_be_visible()
    expect(page.locator(f'#pending tr[data-product-id="{first}"] .flag')).to_have_count(0)
    csp = page.locator('meta[http-equiv="Content-Security-Policy"]').get_attribute("content")
    assert "script-src 'self'" in csp
    screenshot(page, "director-pending")

    page.get_by_label(f"Select {first}").check()
    page.get_by_label(f"Select {second}").check()
    page.get_by_label("New tags").fill(tag)
    page.get_by_role("button", name="Approve selected").click()
    expect(page.locator(".messages .success")).to_contain_text("Approved 2")

    _wait_for_onboarded_rows(page, [first, second])
    page.get_by_label("Tag", exact=True).select_option(tag)
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#onboarded tr[data-product-id]")
    expect(rows).to_have_count(2)
    expect(page.locator(f'#onboarded tr[data-product-id="{first}"] td.tags')).to_have_text(tag)

    # The first EC had a tunnel that went down; the page shows it offline.
    now = timezone.now()
    _in_thread(_set_tunnel, first, online=False, tunnel_connected_at=now, tunnel_disconnected_at=now)
    page.reload()
    status_cell = page.locator(f'#onboarded tr[data-product-id="{first}"] td.status')
    expect(status_cell).to_have_text("offline")
    screenshot(page, "director-onboarded")

    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    _in_thread(_set_tunnel, first, online=True, tunnel_connected_at=timezone.now(), last_heartbeat_at=timezone.now())
    expect(status_cell).to_have_text("online", timeout=15_000)
    expect(status_cell.locator("span.online")).to_have_count(1)
    assert navigations == []

    page.set_viewport_size({"width": 768, "height": 1024})
    screenshot(page, "director-onboarded-tablet")
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_role("link", name=first).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(first)
    expect(page.locator("#timeline li[data-kind=approved]")).to_contain_text(world.a.tenant_admin_username)
    expect(page.locator("#timeline li[data-kind=issued]")).to_have_count(1)
    screenshot(page, "director-ec-detail")

    page.get_by_label("Revocation reason").select_option("key_compromise")
    page.get_by_role("button", name="Revoke certificate").click()
    expect(page.locator(".messages .success")).to_contain_text("Revoked certificate")
    expect(page.locator("#certificates")).to_contain_text("revoked")
    expect(page.locator("#timeline li[data-kind=revoked]")).to_have_count(1)

    page.get_by_label("I understand").check()
    page.get_by_label("Reason", exact=True).fill("returned to vendor")
    page.get_by_role("button", name="Decommission").click()
    expect(page.locator(".messages .success")).to_contain_text(f"Decommissioned {first}")
    expect(page.locator("#ec-state")).to_have_text("Decommissioned")
    expect(page.locator("#timeline li[data-kind=decommissioned]")).to_contain_text("returned to vendor")
    screenshot(page, "director-ec-decommissioned")

    page.get_by_role("link", name="Tags").click()
    expect(page.locator(f'#tags tr[data-tag="{tag}"]')).to_be_visible()
    screenshot(page, "director-tags")
    assert csp_violations == []
