"""The whole journey in Chromium: a new MSP takes an allocated batch of ECs to onboarded ECs.

Every human step happens on a web page: the MSP portal, the vendor's Django
admin and the tenant's Director pages. The devices are simulated EC agents
from ``ec_client``, running in threads against the live stack.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
import uuid
from dataclasses import dataclass, field

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from ec_client.agent import AgentOptions, run_agent
from ec_client.state import write_device
from msp.forms import derive_domain, derive_schema_name
from msp.models import MSPSignupRequest
from tests.browser.conftest import screenshot
from tests.browser.test_msp_portal import NEW_PASSWORD, TENANT_CREATION_TIMEOUT_MS, password_set_path
from tests.conftest import ADMIN_PASSWORD
from tests.factories import VENDOR, new_product_id

BATCH = 3
TENANT_ADMIN_PASSWORD = "lantern-orbit-cascade-71"


@pytest.fixture
def orm_beside_playwright(page, monkeypatch):
    """Allow ORM calls beside Playwright's event loop, and close the extra connection afterwards.

    Playwright's sync API runs an event loop in the test's thread, so Django
    rejects ORM calls there, and the connection opened under it would block
    dropping the test database if it stayed open.
    """
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    yield
    connection.close()


@dataclass
class RunningAgent:
    """A simulated EC in a thread of its own, with its own event loop, kept running until stopped."""

    product_id: str
    thread: threading.Thread | None = None
    loop: asyncio.AbstractEventLoop | None = None
    stop_event: asyncio.Event | None = None
    started: threading.Event = field(default_factory=threading.Event)
    result: object = None

    def stop(self, timeout: float = 30) -> None:
        if self.loop is not None and self.stop_event is not None and not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self.stop_event.set)
            except RuntimeError:
                # The loop closed between the check and the call: the agent has already ended.
                pass
        if self.thread is not None:
            self.thread.join(timeout=timeout)


def _boot_agent(state_dir, product_id: str, options: AgentOptions) -> RunningAgent:
    agent = RunningAgent(product_id)

    async def main():
        agent.loop = asyncio.get_running_loop()
        agent.stop_event = asyncio.Event()
        agent.started.set()
        agent.result = await run_agent(state_dir, options, stop=agent.stop_event)

    agent.thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    agent.thread.start()
    agent.started.wait(timeout=10)
    return agent


def _shown_product_ids(page, table: str) -> set[str]:
    rows = page.locator(f"#{table} tr[data-product-id]")
    return {rows.nth(index).get_attribute("data-product-id") for index in range(rows.count())}


def _reload_until_listed(page, table: str, product_ids: list[str], timeout: float = 90) -> None:
    """Reload the Director dashboard until every product appears in ``table`` (pending or onboarded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if set(product_ids) <= _shown_product_ids(page, table):
            return
        time.sleep(0.5)
        page.reload()
    raise AssertionError(f"Timed out after {timeout} s waiting for {product_ids} in #{table}. "
                         f"Shown: {sorted(_shown_product_ids(page, table))}")


def test_journey_signup_to_onboarded_ecs(world, live_stack, committed, page, browser, tmp_path,
                                         orm_beside_playwright):
    from onboarding.models import EdgeController
    from provisioning.services.access_keys import create_access_key
    from provisioning.services.importing import import_products

    base = live_stack.url()
    suffix = uuid.uuid4().hex[:8]
    organisation = f"Journey Org {suffix}"
    username = f"journey-{suffix}"
    tenant_name = f"Journey {suffix}"
    tenant_admin = f"journey-admin-{suffix}"

    # The factory's batch and the key the firmware carries.
    product_ids = [new_product_id() for _ in range(BATCH)]
    import_products(io.BytesIO("\n".join(product_ids).encode()), actor=VENDOR, source_name=f"journey-{suffix}.csv")
    _key, provisioning_key = create_access_key(f"journey-{suffix}", actor=VENDOR)

    # 1. The MSP requests an account.
    page.goto(f"{base}/portal/signup/")
    page.get_by_label("Organisation name").fill(organisation)
    page.get_by_label("Contact name").fill("Ada Lovelace")
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Requested user name").fill(username)
    screenshot(page, "journey-1-signup")
    page.get_by_role("button", name="Send request").click()
    page.get_by_role("heading", name="Request sent").wait_for()
    signup = MSPSignupRequest.objects.get(username=username)

    # 2. The vendor approves the request and allocates the batch, in the admin.
    vendor = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    vendor.goto(f"{base}/admin/login/?next=/admin/msp/mspsignuprequest/")
    vendor.get_by_label("Username").fill(world.vendor_admin.username)
    vendor.get_by_label("Password").fill(ADMIN_PASSWORD)
    vendor.get_by_role("button", name="Log in").click()
    vendor.locator(f"input[name=_selected_action][value='{signup.pk}']").check()
    vendor.locator("select[name=action]").select_option("approve")
    vendor.get_by_role("button", name="Go").click()
    vendor.get_by_text(f"Approved {organisation}").wait_for()
    screenshot(vendor, "journey-2-admin-signup-approved")

    # The filter in the address narrows the product list to this batch, as a vendor's bookmark would.
    vendor.goto(f"{base}/admin/provisioning/product/?product_id__in={','.join(product_ids)}")
    expect(vendor.locator("input[name=_selected_action]")).to_have_count(BATCH)
    vendor.locator("#action-toggle").check()
    vendor.locator("select[name=action]").select_option("allocate_to_msp")
    vendor.locator("select[name=msp]").select_option(label=organisation)
    vendor.get_by_role("button", name="Go").click()
    vendor.get_by_text(f"Allocated {BATCH} products to {organisation}").wait_for()
    screenshot(vendor, "journey-3-admin-allocated")
    vendor.context.close()

    # 3. The MSP user sets a password with the emailed link and signs in.
    user = get_user_model().objects.get(username=username)
    page.goto(base + password_set_path(user))
    page.get_by_label("New password:", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password confirmation").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set password").click()
    page.get_by_role("heading", name="Password set").wait_for()
    page.goto(f"{base}/portal/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    assert page.locator("#count-allocated").inner_text() == str(BATCH)

    page.get_by_role("link", name="Claim", exact=True).click()
    page.get_by_label("Or paste Product IDs").fill("\n".join(product_ids))
    page.get_by_role("button", name="Claim").click()
    page.get_by_role("heading", name="Claim result").wait_for()
    assert f"{BATCH} changed" in page.locator("#totals").inner_text()
    screenshot(page, "journey-4-claimed")

    page.get_by_role("link", name="Tenants", exact=True).click()
    page.get_by_label("Tenant name").first.fill(tenant_name)
    page.get_by_label("Tenant admin user name").fill(tenant_admin)
    page.get_by_label("Tenant admin password").fill(TENANT_ADMIN_PASSWORD)
    page.get_by_role("button", name="Create tenant").click()
    # A rejected form comes back at once, so its errors are reported instead of waiting out the timeout.
    page.locator("#access-key, .errorlist").first.wait_for(timeout=TENANT_CREATION_TIMEOUT_MS)
    assert page.locator(".errorlist").count() == 0, page.locator(".errorlist").all_inner_texts()
    assert page.locator("#access-key").inner_text().startswith("ztsp_tk_")
    screenshot(page, "journey-5-tenant-created")

    page.get_by_role("link", name="Products", exact=True).click()
    for product_id in product_ids:
        page.get_by_label(f"Select {product_id}").check()
    page.get_by_label("Tenant for the ticked products").select_option(label=tenant_name)
    page.get_by_role("button", name="Map ticked to tenant").click()
    page.get_by_text(f"Mapped {BATCH} products to {tenant_name}").wait_for()
    screenshot(page, "journey-6-mapped")

    # 4. The ECs boot, look up their owner and ask the new tenant to onboard them.
    domain = derive_domain(tenant_name)
    options = AgentOptions(
        resolve=(f"*.localhost:{live_stack.web_port}:127.0.0.1", f"localhost:{live_stack.tunnel_port}:127.0.0.1"),
        backoff_max=2, wait_seconds=20, deadline_seconds=240,
    )
    agents = []
    try:
        for index, product_id in enumerate(product_ids):
            state_dir = tmp_path / f"ec-{index}"
            write_device(state_dir, product_id, base, provisioning_key, {"model": "EC100", "site": "journey"})
            agents.append(_boot_agent(state_dir, product_id, options))

        # 5. The tenant admin approves the three pending ECs at once, with a tag.
        director = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        director.goto(live_stack.url(domain) + "/")
        director.get_by_label("User name").fill(tenant_admin)
        director.get_by_label("Password").fill(TENANT_ADMIN_PASSWORD)
        director.get_by_role("button", name="Sign in").click()
        expect(director.get_by_role("heading", name="Edge Controllers", level=1)).to_be_visible()
        _reload_until_listed(director, "pending", product_ids)
        screenshot(director, "journey-7-director-pending")
        for product_id in product_ids:
            director.get_by_label(f"Select {product_id}").check()
        tag = f"journey-{suffix[:6]}"
        director.get_by_label("New tags").fill(tag)
        director.get_by_role("button", name="Approve selected").click()
        expect(director.locator(".messages .success")).to_contain_text(f"Approved {BATCH}")

        # 6. The certificates are issued and the tunnels come up. The status cells update without a reload.
        _reload_until_listed(director, "onboarded", product_ids)
        navigations = []
        director.on("framenavigated",
                    lambda frame: navigations.append(frame.url) if frame == director.main_frame else None)
        for product_id in product_ids:
            row = director.locator(f'#onboarded tr[data-product-id="{product_id}"]')
            expect(row.locator("td.tags")).to_have_text(tag)
            expect(row.locator("td.status")).to_have_text("online", timeout=60_000)
        assert navigations == []
        screenshot(director, "journey-8-director-onboarded")

        # The tunnels may all have been up before the last reload, so one EC going away shows that
        # the page follows the gateway's status by itself.
        agents[0].stop()
        expect(director.locator(f'#onboarded tr[data-product-id="{product_ids[0]}"] td.status')
               ).to_have_text("offline", timeout=30_000)
        assert navigations == []
        director.context.close()

        with schema_context(derive_schema_name(tenant_name)):
            states = dict(EdgeController.objects.filter(product_id__in=product_ids)
                          .values_list("product_id", "state"))
        assert states == {product_id: EdgeController.State.ONBOARDED for product_id in product_ids}

        # The MSP's product pages show each product looked up and routed to the new tenant.
        for product_id in product_ids:
            page.goto(f"{base}/portal/products/")
            page.get_by_role("link", name=product_id).click()
            expect(page.get_by_role("row", name="Last lookup")).not_to_contain_text("never")
            expect(page.get_by_role("table", name="Lookup history")).to_contain_text("200")
            assert tenant_name in page.locator("#route-reasons").inner_text()
        screenshot(page, "journey-9-msp-product-looked-up")
    finally:
        for agent in agents:
            agent.stop()

    for agent in agents:
        assert agent.result is not None, f"{agent.product_id} did not stop"
        assert agent.result.cert_serial, (agent.product_id, agent.result.phase, agent.result.error)
