"""Gallery and endpoints pages in a real Chromium (screenshots of each page)."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.web_session import sign_in
from tests.fixtures.browser import screenshot

pytestmark = pytest.mark.timeout(120)


def test_gallery_filters_and_endpoints_page(fleet, page):
    headers = fleet.login()
    for prompt in ("first queued", "second queued"):
        r = httpx.post(f"{fleet.url}/api/v1/inferences", headers=headers, json={"task": "txt2img", "params": {
            "prompt": prompt, "steps": 2, "width": 64, "height": 64,
            "override_settings": {"sd_model_checkpoint": "demo-sd15.safetensors"}}})
        assert r.status_code == 202, r.text
    httpx.post(f"{fleet.url}/api/v1/inferences/{r.json()['id']}/cancel", headers=headers)

    sign_in(page, fleet.url, path="/gallery")
    expect(page.locator("article.card")).to_have_count(2)
    page.get_by_label("Status").select_option("cancelled")
    expect(page.locator("article.card")).to_have_count(1)
    expect(page.locator("article.card")).to_contain_text("second queued")
    page.get_by_label("Status").select_option("")
    page.locator("article.card[data-status=queued]").get_by_role("button", name="Cancel").click()
    expect(page.locator("article.card[data-status=cancelled]")).to_have_count(2)
    screenshot(page, "web-gallery")

    page.get_by_role("link", name="Endpoints").click()
    expect(page.locator("h1")).to_have_text("Endpoints")
    page.wait_for_load_state("networkidle")
    screenshot(page, "web-endpoints")
    assert not page.console_errors, page.console_errors
