"""The official ComfyUI frontend, unmodified, in a real Chromium: sdfleet's SD template queued on a real worker."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from sdfleet.api.comfy.listener import start_comfy_listener
from tests.browser.web_session import sign_in
from tests.fixtures.browser import screenshot
from tests.fixtures.live import free_port
from tests.fixtures.runtime import ADMIN_PASSWORD

pytestmark = pytest.mark.timeout(240)

# The frontend animates its favicon from the site root (`/assets/images/favicon_progress_16x16/frame_N.png`)
# whatever its base path: cosmetic, and `/assets` at the root of the main app is not a ComfyUI route.
COSMETIC = re.compile(r"^/assets/(images/favicon_progress_16x16/frame_\d+\.png|favicon\.ico)$")
SD_TEMPLATE = "Open template: SD 1.x txt2img (demo-sd15.safetensors)"
GRAPH_NODES = """() => app.graph._nodes.map((n) => ({type: n.type,
    widgets: Object.fromEntries((n.widgets ?? []).map((w) => [w.name, w.value]))}))"""
HAS_CHECKPOINT_LOADER = "() => window.app?.graph?._nodes.some((n) => n.type === 'CheckpointLoaderSimple')"
WATCH_TITLE = """() => { window.sdfleetTitles = [document.title];
    new MutationObserver(() => window.sdfleetTitles.push(document.title))
        .observe(document.querySelector('title'), {childList: true, characterData: true, subtree: true}); }"""
# "[0%][50%] KSampler": the workflow's and the running node's progress
NODE_PROGRESS = "() => window.sdfleetTitles.some((t) => /\\[[1-9]\\d*%\\] KSampler/.test(t))"
OUTPUT_SHOWN = """() => { const save = app.graph._nodes.find((n) => n.type === 'SaveImage');
    const img = save?.imgs?.[0]; return img && img.complete && img.naturalWidth === 64 ? img.src : null; }"""
FIT_VIEW = "() => app.extensionManager.command.execute('Comfy.Canvas.FitView')"


@dataclass
class PageLog:
    """What the page did: failed responses, console errors (with their source) and WebSocket message types."""

    failed: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    received: list[str] = field(default_factory=list)

    def route_errors(self) -> tuple[list[str], list[tuple[str, str]]]:
        """Failed responses and console errors, less the cosmetic ones."""
        failed = [f for f in self.failed if not COSMETIC.match(urlsplit(f.split(" ", 1)[1]).path)]
        console = [(text, url) for text, url in self.console if not COSMETIC.match(urlsplit(url).path)]
        return failed, console


def watch(page) -> PageLog:
    log = PageLog()
    page.on("response", lambda r: log.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("console", lambda m: log.console.append((m.text, m.location.get("url", "")))
            if m.type == "error" else None)
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: log.received.append(
        json.loads(f)["type"] if isinstance(f, str) else "binary-preview")))
    return log


def run_and_see_the_image(page, *, base: str, name: str) -> None:
    """Press Run, see the sampler's progress in the page, then the output image fetched from `{base}/api/view`."""
    page.evaluate(FIT_VIEW)  # the canvas loads a node's output images when it draws the node
    page.evaluate(WATCH_TITLE)
    page.get_by_test_id("queue-button").click()
    page.wait_for_function(NODE_PROGRESS, timeout=120_000)
    screenshot(page, f"{name}-progress")
    # an <img> carries no custom header: /view is authenticated by the session cookie
    src = page.wait_for_function(OUTPUT_SHOWN, timeout=120_000).json_value()
    assert urlsplit(src).path == f"{base}/api/view" and "type=output" in src, src
    page.wait_for_function("() => !/\\[\\d+%\\]/.test(document.title)")  # the run is over
    screenshot(page, f"{name}-output")


def test_frontend_opens_the_sd_template_queues_it_on_the_fleet_and_shows_the_image(fleet, page):
    fleet.start_worker("w")
    page.set_viewport_size({"width": 1920, "height": 1080})  # the whole graph legible at FitView's zoom
    log = watch(page)

    # 1. Log in through the web UI's form and land on the frontend
    sign_in(page, fleet.url, path="/comfy/")
    # sdfleet's extension replaces the frontend's built-in default (a model family sdfleet does not run)
    page.wait_for_function(HAS_CHECKPOINT_LOADER, timeout=60_000)
    first = page.evaluate(GRAPH_NODES)
    assert {"type": "CheckpointLoaderSimple", "widgets": {"ckpt_name": "demo-sd15.safetensors"}} in first, first

    # 2. Open sdfleet's SD txt2img template from the sdfleet menu, on an empty canvas
    page.evaluate("() => app.graph.clear()")
    assert page.evaluate("() => app.graph._nodes.length") == 0
    page.get_by_test_id("comfy-menu-button").click()
    page.get_by_role("menuitem", name="sdfleet").hover()
    page.get_by_role("menuitem", name=SD_TEMPLATE).click()
    page.wait_for_function("() => app.graph._nodes.length === 7")
    nodes = page.evaluate(GRAPH_NODES)
    types = sorted(n["type"] for n in nodes)
    assert types == sorted(["CheckpointLoaderSimple", "CLIPTextEncode", "CLIPTextEncode", "EmptyLatentImage",
                            "KSampler", "VAEDecode", "SaveImage"]), types
    sampler = next(n["widgets"] for n in nodes if n["type"] == "KSampler")
    assert sampler["steps"] == 4 and sampler["sampler_name"] == "euler"
    page.keyboard.press("Escape")
    page.evaluate(FIT_VIEW)
    screenshot(page, "comfy-template")

    # 3. Run: progress in the page, then the image
    run_and_see_the_image(page, base="/comfy", name="comfy")

    # 4. What drove the page: upstream's message sequence over the WebSocket, live previews included
    order = [t for t in log.received if t in ("execution_start", "progress", "executed", "execution_success")]
    assert order[0] == "execution_start" and order[-2:] == ["executed", "execution_success"], log.received
    assert "progress" in order and "binary-preview" in log.received, log.received

    # 5. The frontend ran under its own Content Security Policy and nothing was blocked
    policy = page.request.get(f"{fleet.url}/comfy/").headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'self'" in policy, policy
    assert not [text for text, _ in log.console if "Content Security Policy" in text], log.console

    # 6. No console error from a missing or malformed route
    failed, console = log.route_errors()
    assert not failed and not console, (failed, console)


@pytest.fixture
def comfy_port(fleet) -> Iterator[str]:
    """ComfyUI's own listener, as `sdfleet serve --comfy-port` starts it, on a free port."""
    port = free_port()
    server = start_comfy_listener(fleet.server.runtime.services, host="127.0.0.1", port=port,
                                  login_url=f"{fleet.url}/login")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True


def test_frontend_at_the_root_of_the_comfy_port_runs_the_template(fleet, comfy_port, page):
    fleet.start_worker("w")
    page.set_viewport_size({"width": 1920, "height": 1080})
    log = watch(page)

    # Not signed in: sent to the main server's login form; the session cookie then serves both ports
    page.goto(f"{comfy_port}/")
    assert page.url.startswith(f"{fleet.url}/login?next="), page.url
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(fleet.url) + "/.*"))
    answer = page.goto(f"{comfy_port}/")
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    page.wait_for_function(HAS_CHECKPOINT_LOADER, timeout=60_000)

    run_and_see_the_image(page, base="", name="comfy-port")
    assert not [text for text, _ in log.console if "Content Security Policy" in text], log.console
    failed, console = log.route_errors()
    assert not failed and not console, (failed, console)
