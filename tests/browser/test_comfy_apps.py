"""Published workflows as Apps in the official ComfyUI frontend, in a real Chromium, on both ComfyUI listeners:
a lead artist builds the app in App Builder and publishes it, an artist opens it under Apps and runs it on a
real worker, an artist without the role never sees it and the API refuses their run."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from sdfleet.api.comfy.listener import start_comfy_listener
from tests.browser.test_comfy_frontend import HAS_CHECKPOINT_LOADER, watch
from tests.fixtures.browser import screenshot
from tests.fixtures.live import free_port

pytestmark = pytest.mark.timeout(420)
PASSWORD = "user-password-1"
WIDGET = "[data-testid=node-body-{node}] [data-testid=node-widget][data-widget-name={name}] .cursor-pointer"
LINEAR_DATA = "() => app.graph.extra.linearData ?? null"
# App Mode shows the run's image among its outputs, fetched from /view with the session cookie
APP_OUTPUT = """() => [...document.querySelectorAll('[data-testid=linear-outputs] img, [data-testid=linear-center-panel] img')]
    .filter((img) => img.complete && img.naturalWidth === 64 && img.src.includes('/view?'))
    .map((img) => img.src)[0] ?? null"""


@pytest.fixture(params=["main", "comfy-port"])
def listener(request, fleet) -> Iterator[str]:
    """The frontend's base URL: `/comfy` on the main server, or the root of ComfyUI's own port."""
    if request.param == "main":
        yield f"{fleet.url}/comfy"
        return
    port = free_port()
    server = start_comfy_listener(fleet.server.runtime.services, host="127.0.0.1", port=port,
                                  login_url=f"{fleet.url}/login")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True


def open_frontend(browser, fleet, base: str, username: str):
    """A new signed-in page on the frontend at `base` (the login form is always the main server's)."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    log = watch(page)
    page.goto(f"{base}/")
    assert page.url.startswith(f"{fleet.url}/login?next="), page.url
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(fleet.url) + "/.*"))
    page.goto(f"{base}/")
    page.wait_for_function(HAS_CHECKPOINT_LOADER, timeout=90_000)
    return page, log


def build_and_publish(page, *, name: str, role: str) -> None:
    """App Builder: choose the positive prompt and the seed as inputs and Save Image as the output; then
    sdfleet's menu command publishes it for `role`."""
    page.evaluate("() => app.extensionManager.command.execute('Comfy.ToggleLinear')")
    page.get_by_test_id("linear-welcome-build-app").click()
    page.locator(WIDGET.format(node=6, name="text")).first.click()
    page.locator(WIDGET.format(node=3, name="seed")).first.click()
    page.get_by_role("button", name="Next").click()
    dismiss = page.get_by_test_id("linear-vue-node-switch-dismiss")
    if dismiss.is_visible():
        dismiss.click()
    # Save Image sits under the builder's panel: pan the canvas until it is in view, then pick it
    for _ in range(40):
        right = page.evaluate("""() => document.querySelector('[data-testid=node-header-9]')
            ?.getBoundingClientRect().right ?? 1e9""")
        if 0 < right < page.viewport_size["width"] - 500:
            break
        page.evaluate("() => { app.canvas.ds.offset[0] -= 150; app.canvas.setDirty(true, true); }")
        page.wait_for_timeout(250)
    page.wait_for_timeout(500)  # the node's click overlay follows the canvas on the next frames
    box = page.get_by_test_id("node-header-9").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("() => app.graph.extra.linearData?.outputs?.length === 1")
    selection = page.evaluate(LINEAR_DATA)
    assert [entry[1] for entry in selection["inputs"]] == ["text", "seed"], selection
    screenshot(page, "apps-builder")
    page.get_by_role("button", name="Exit app builder").click()

    answers = iter([name, "A cat, any cat", role])
    alerts = []

    def answer(dialog) -> None:
        if dialog.type == "prompt":
            dialog.accept(next(answers))
        elif dialog.type == "confirm":  # hold for approval? no: artists get it at once
            dialog.dismiss()
        else:
            alerts.append(dialog.message)
            dialog.accept()

    page.on("dialog", answer)
    page.get_by_test_id("comfy-menu-button").click()
    page.get_by_role("menuitem", name="sdfleet").hover()
    page.get_by_role("menuitem", name="Publish workflow to sdfleet…").click()
    for _ in range(100):
        if alerts:
            break
        page.wait_for_timeout(100)
    assert alerts == [f"Published {name} version 1"], alerts


def open_app(page, name: str) -> None:
    """The Apps sidebar: the `Published` folder, then the app, which opens in App Mode."""
    page.get_by_test_id("apps-tab-button").click()
    page.get_by_test_id("apps-sidebar").get_by_text("Published", exact=True).click()
    page.get_by_test_id("apps-sidebar").get_by_text(name, exact=True).click()
    page.wait_for_function("() => app.graph.extra?.sdfleet?.app !== undefined", timeout=60_000)
    skip = page.get_by_role("button", name="Skip")  # App Mode's first-time tour
    try:
        skip.click(timeout=5_000)
    except Exception:
        pass


def test_lead_publishes_from_app_builder_and_an_artist_runs_it_under_apps(browser, fleet, listener, request):
    name, where = "Cat app", request.node.callspec.params["listener"]
    admin = fleet.login()
    for username, roles in (("lead", ["lead-artist"]), ("ann", ["artist"]), ("olga", ["outsider"])):
        if roles == ["outsider"]:
            httpx.post(f"{fleet.url}/api/v1/roles", headers=admin,
                       json={"name": "outsider", "permissions": ["inference:all"]}).raise_for_status()
        httpx.post(f"{fleet.url}/api/v1/users", headers=admin,
                   json={"username": username, "password": PASSWORD, "roles": roles}).raise_for_status()
    fleet.start_worker("w")

    # 1. The lead artist builds the app in App Builder and publishes it for artists
    lead, lead_log = open_frontend(browser, fleet, listener, "lead")
    build_and_publish(lead, name=name, role="artist")
    published = httpx.get(f"{fleet.url}/api/v1/workflows/{name}", headers=fleet.login("lead", PASSWORD)).json()
    assert [(i["name"], i["type"]) for i in published["inputs"]] == [("text", "string"), ("seed", "int")]
    lead.context.close()

    # 2. An artist finds it under Apps, opens it in App Mode, fills the form and runs it
    page, log = open_frontend(browser, fleet, listener, "ann")
    open_app(page, name)
    prompt = page.get_by_test_id("linear-widgets").locator("textarea").first
    prompt.fill("a black cat")
    screenshot(page, f"apps-form-{where}")
    page.get_by_test_id("linear-run-button").get_by_role("button", name="Run").click()
    src = page.wait_for_function(APP_OUTPUT, timeout=180_000).json_value()
    assert "/view?" in src and "type=output" in src, src
    screenshot(page, f"apps-output-{where}")
    # The run was the published workflow with the artist's prompt
    ann = fleet.login("ann", PASSWORD)
    [job] = httpx.get(f"{fleet.url}/api/v1/inferences", headers=ann).json()["items"]
    assert job["source"] == "workflow" and job["status"] == "succeeded", job
    failed, console = log.route_errors()
    assert not failed and not console, (failed, console)
    assert not [e for e in page.console_errors if "Content Security Policy" in e]
    page.context.close()
    assert not [e for e in lead_log.console if "Content Security Policy" in e[0]]

    # 3. An artist without the role: no app under Apps, and the API refuses the run
    page, _ = open_frontend(browser, fleet, listener, "olga")
    page.get_by_test_id("apps-tab-button").click()
    sidebar = page.get_by_test_id("apps-sidebar")
    sidebar.wait_for()
    assert sidebar.get_by_text("Published", exact=True).count() == 0
    assert sidebar.get_by_text(name, exact=True).count() == 0
    page.context.close()
    olga = fleet.login("olga", PASSWORD)
    r = httpx.post(f"{fleet.url}/api/v1/workflows/{name}/runs", headers=olga, json={"inputs": {"text": "x"}})
    assert r.status_code == 404, r.text
