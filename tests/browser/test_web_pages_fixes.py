"""Models, endpoints, gallery and theme bugs of issue 18, each a test that failed on the old pages: the
visibility form does what it says, endpoint edits survive the refresh (events in words, models by name),
an empty filter result says so, and the light theme follows the system with a toggle kept on the server."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from sdfleet.store.types import utcnow
from tests.browser.web_session import sign_in
from tests.fixtures.browser import screenshot
from tests.integration.checkpoints.model_bytes import lora_bytes

pytestmark = pytest.mark.timeout(180)


def make_user(web, admin_headers, username: str, roles: list[str]) -> dict[str, str]:
    r = httpx.post(f"{web.url}/api/v1/users", headers=admin_headers,
                   json={"username": username, "password": "user-password-1", "roles": roles})
    assert r.status_code == 201, r.text
    return web.login(username, "user-password-1")


def test_model_visibility_form_does_what_it_says(web, admin_page, admin_headers, tmp_path):
    page = admin_page
    artist = make_user(web, admin_headers, "vis-artist", ["artist"])
    model = tmp_path / "team-style.safetensors"
    model.write_bytes(lora_bytes())
    page.goto(f"{web.url}/models")
    expect(page.locator("#upload-role-everyone")).to_be_checked()
    page.set_input_files("#upload-file", str(model))
    page.locator("#upload-type").select_option("Lora")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status")).to_contain_text("Registered team-style.safetensors", timeout=60_000)
    seen = [m["name"] for m in httpx.get(f"{web.url}/api/v1/checkpoints?type=Lora", headers=artist).json()["items"]]
    assert "team-style.safetensors" in seen, "left as it came, the form shares the model with everyone"

    row = page.locator('tr[data-model-name="team-style.safetensors"]')
    row.get_by_role("button", name="Edit").click()
    page.locator("#edit-role-everyone").uncheck()
    page.locator("#model-edit-save").click()
    expect(page.locator("#edit-roles-error")).to_have_text("Choose Everyone or at least one role")
    page.locator("#edit-role-lead-artist").check()
    page.locator("#model-edit-save").click()
    expect(row.locator("[data-role=visibility]")).to_have_text("lead-artist")
    assert page.locator(".toast.error").count() == 0
    seen = [m["name"] for m in httpx.get(f"{web.url}/api/v1/checkpoints?type=Lora", headers=artist).json()["items"]]
    assert "team-style.safetensors" not in seen
    screenshot(page, "web-fix-model-visibility")


def test_endpoint_edits_survive_the_refresh(web, admin_page, admin_headers):
    page = admin_page
    runtime = web.server.runtime
    r = httpx.post(f"{web.url}/api/v1/endpoints", headers=admin_headers,
                   json={"name": "team", "devices": ["cpu"], "min_replicas": 0, "max_replicas": 2})
    assert r.status_code == 201, r.text
    runtime.services.endpoints.store.record("team", "scale", {"from": 0, "to": 1, "replicas": 0, "queued": 3,
                                                              "running": 0, "reason": "3 jobs waiting"}, now=utcnow())
    sha = next(m["sha256"] for m in httpx.get(f"{web.url}/api/v1/checkpoints", headers=admin_headers).json()["items"]
               if m["name"] == "demo-sd15.safetensors")
    token = runtime.services.workers.register(name="team-gpu", endpoint="team").token
    r = httpx.post(f"{web.url}/api/v1/worker/report", headers={"Authorization": f"Bearer {token}"},
                   json={"status": "idle", "device": "cpu", "loaded_models": [sha]})
    assert r.status_code == 204, r.text

    page.goto(f"{web.url}/endpoints")
    panel = page.locator('[data-endpoint="team"]')
    expect(panel.locator("[data-role=loaded-models]")).to_have_text("demo-sd15.safetensors")
    panel.locator("summary").click()
    expect(panel.locator("ul.events")).to_contain_text("Scaled from 0 to 1 replica(s): 3 jobs waiting")
    assert "{" not in panel.locator("ul.events").inner_text()
    page.get_by_label("Max replicas").last.fill("4")
    refreshed = int(page.locator("#endpoints").get_attribute("data-refreshed"))
    expect(page.locator("#endpoints")).to_have_attribute("data-refreshed", str(refreshed + 1), timeout=15_000)
    expect(page.locator("#max-team")).to_have_value("4")
    expect(page.locator("#max-team")).to_be_focused()
    expect(panel.locator("details")).to_have_attribute("open", "")
    screenshot(page, "web-fix-endpoints-refresh")
    panel.get_by_role("button", name="Scale").click()
    expect(page.locator(".toast", has_text="Scaled team")).to_be_visible()
    assert httpx.get(f"{web.url}/api/v1/endpoints/team", headers=admin_headers).json()["max_replicas"] == 4


def test_an_empty_filter_result_says_so(web, admin_page):
    page = admin_page
    page.goto(f"{web.url}/gallery")
    page.get_by_label("Status").select_option("failed")
    expect(page.locator("#gallery-no-match")).to_be_visible()
    expect(page.locator("#gallery-empty")).to_be_hidden()


def background(page) -> tuple[int, ...]:
    value = page.evaluate("getComputedStyle(document.body).backgroundColor")
    return tuple(int(x) for x in value[value.index("(") + 1:-1].split(",")[:3])


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_theme_follows_the_system_and_the_toggle_is_kept(web, browser, scheme):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme=scheme)
    page = context.new_page()
    try:
        sign_in(page, web.url, path="/gallery")
        assert (sum(background(page)) > 600) == (scheme == "light"), background(page)
        toggle = page.locator("#theme-toggle")
        chosen = "dark" if scheme == "light" else "light"
        while toggle.get_attribute("data-theme-choice") != chosen:
            with page.expect_response(lambda r: r.url.endswith("/me/preferences") and r.request.method == "PATCH"):
                toggle.click()
        assert (sum(background(page)) > 600) == (chosen == "light")
        expect(page.locator("html")).to_have_attribute("data-theme", chosen)
        page.reload()
        expect(page.locator("html")).to_have_attribute("data-theme", chosen)
        screenshot(page, f"web-fix-theme-{chosen}")
        while toggle.get_attribute("data-theme-choice") != "system":
            with page.expect_response(lambda r: r.url.endswith("/me/preferences") and r.request.method == "PATCH"):
                toggle.click()
        expect(page.locator("html")).not_to_have_attribute("data-theme", chosen)
    finally:
        context.close()
