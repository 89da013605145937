"""The audit log tab of the settings page in a real Chromium: admins only, filters, paging, strict CSP."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.web_session import sign_in
from tests.fixtures.browser import screenshot

pytestmark = pytest.mark.timeout(240)


def test_admins_filter_and_page_the_audit_log(fleet, page, browser):
    admin = fleet.login()
    for i in range(30):  # 30 role.create events: two pages of 25
        r = httpx.post(f"{fleet.url}/api/v1/roles", headers=admin,
                       json={"name": f"team-{i:02d}", "permissions": ["inference:all"]})
        assert r.status_code == 201, r.text
    r = httpx.post(f"{fleet.url}/api/v1/users", headers=admin,
                   json={"username": "keeper", "password": "keeper-password-1", "roles": ["team-00"]})
    assert r.status_code == 201, r.text

    sign_in(page, fleet.url, path="/settings")
    page.get_by_role("tab", name="Audit log").click()
    rows = page.locator("#audit-events tr[data-audit-action]")
    expect(rows.first).to_be_visible()
    expect(page.locator("#audit-events tr[data-audit-action='auth.login']").first).to_contain_text("admin")

    # Filter by action: newest first, 25 per page, then the 5 older ones.
    page.get_by_label("Action").select_option("role.create")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(25)
    expect(rows.first).to_contain_text("team-29")
    expect(page.locator("#audit-prev")).to_be_disabled()
    page.get_by_role("button", name="Older →").click()
    expect(rows).to_have_count(5)
    expect(rows.last).to_contain_text("team-00")
    expect(page.locator("#audit-next")).to_be_disabled()
    page.get_by_role("button", name="← Newer").click()
    expect(rows).to_have_count(25)

    # A prefix of actions and a target: the user's creation, with its changes and no password.
    page.get_by_label("Action").select_option("user.")
    page.get_by_label("Target").fill("keeper")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("user.create")
    expect(rows.first).to_contain_text("team-00")
    expect(rows.first).not_to_contain_text("keeper-password-1")
    screenshot(page, "web-settings-audit")

    # Nothing matches: said so. Clear brings every event back.
    page.get_by_label("Actor").fill("nobody-at-all")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#audit-events")).to_contain_text("No events match.")
    page.get_by_role("button", name="Clear").click()
    expect(rows.first).to_be_visible()
    assert rows.count() == 25
    assert page.console_errors == []

    # A user manager who is no admin has no audit tab (and the API refuses them anyway).
    r = httpx.post(f"{fleet.url}/api/v1/roles", headers=admin, json={"name": "managers", "permissions": ["user:all"]})
    assert r.status_code == 201, r.text
    r = httpx.post(f"{fleet.url}/api/v1/users", headers=admin,
                   json={"username": "manager", "password": "manager-password-1", "roles": ["managers"]})
    assert r.status_code == 201, r.text
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        other = context.new_page()
        sign_in(other, fleet.url, username="manager", password="manager-password-1", path="/settings")
        expect(other.get_by_role("tab", name="Users")).to_be_visible()
        expect(other.get_by_role("tab", name="Audit log")).to_have_count(0)
        expect(other.locator("#panel-audit")).to_have_count(0)
    finally:
        context.close()
