"""Settings in a real Chromium: roles and users by an admin, what a limited user sees, API keys."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.web_session import sign_in
from tests.fixtures.browser import screenshot

pytestmark = pytest.mark.timeout(180)


def test_admin_creates_a_role_and_a_user_who_sees_only_what_the_role_allows(fleet, page, browser):
    sign_in(page, fleet.url, path="/settings")
    page.get_by_role("tab", name="Roles").click()
    page.get_by_label("Role name").fill("painters")
    page.get_by_label("Description").fill("may only generate")
    page.locator("#new-role-permissions").get_by_label("inference:all").check()
    page.get_by_role("button", name="Create role").click()
    expect(page.locator("tr[data-role-name=painters]")).to_contain_text("inference:all")
    screenshot(page, "web-settings-roles")

    page.get_by_role("tab", name="Users").click()
    page.get_by_label("Username").fill("pat")
    page.get_by_label("Password").fill("pat-password-1")
    page.locator("#new-user-roles").get_by_label("painters").check()
    page.get_by_role("button", name="Create user").click()
    expect(page.locator("tr[data-username=pat]")).to_contain_text("painters")
    screenshot(page, "web-settings-users")

    context = browser.new_context(viewport={"width": 768, "height": 1000})
    try:
        pat = context.new_page()
        sign_in(pat, fleet.url, username="pat", password="pat-password-1")
        nav = pat.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Generate")).to_be_visible()
        expect(nav.get_by_role("link", name="Gallery")).to_be_visible()
        expect(nav.get_by_role("link", name="Models")).to_have_count(0)
        expect(nav.get_by_role("link", name="Endpoints")).to_have_count(0)
        screenshot(pat, "web-generate-tablet")
        response = pat.goto(f"{fleet.url}/models")
        assert response.status == 403
        expect(pat.get_by_text("checkpoint:all")).to_be_visible()
        pat.goto(f"{fleet.url}/settings")
        expect(pat.get_by_role("tab", name="Users")).to_have_count(0)
        expect(pat.get_by_role("tab", name="Roles")).to_have_count(0)
        # the server refuses anyway: the page's own cookie + CSRF token cannot create a user
        status = pat.evaluate("""async () => (await fetch('/api/v1/users', {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': document.cookie.match(/sdfleet_csrf=([^;]+)/)[1]},
            body: JSON.stringify({username: 'x1', password: 'password-123'})})).status""")
        assert status == 403
    finally:
        context.close()


def test_an_api_key_is_shown_once_and_works(fleet, page):
    sign_in(page, fleet.url, path="/settings")
    expect(page.locator("#server-url")).to_have_text(fleet.url)
    page.get_by_label("Key name").fill("laptop")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#key-secret")
    expect(secret).not_to_be_empty()
    key = secret.text_content()
    expect(page.locator("#keys")).to_contain_text("laptop")
    screenshot(page, "web-settings-keys")

    me = httpx.get(f"{fleet.url}/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200 and me.json()["username"] == "admin"

    page.reload()
    expect(page.locator("#keys")).to_contain_text("laptop")
    assert key not in page.content()
    page.once("dialog", lambda d: d.accept())
    page.locator("#keys").get_by_role("button", name="Revoke").click()
    expect(page.locator("#keys")).to_contain_text("No keys yet")
    assert httpx.get(f"{fleet.url}/api/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401
