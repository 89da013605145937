"""The official ComfyUI frontend, unmodified, in a real Chromium: sdfleet's SD template queued on a real worker."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest

from tests.browser.web_session import sign_in
from tests.fixtures.browser import screenshot

pytestmark = pytest.mark.timeout(240)

# The frontend animates its favicon from the site root (`/assets/images/favicon_progress_16x16/frame_N.png`)
# whatever its base path: cosmetic, and `/assets` at the root is not a ComfyUI route of ours.
COSMETIC = re.compile(r"^/assets/(images/favicon_progress_16x16/frame_\d+\.png|favicon\.ico)$")
GRAPH_NODES = """() => app.graph._nodes.map((n) => ({type: n.type,
    widgets: Object.fromEntries((n.widgets ?? []).map((w) => [w.name, w.value]))}))"""
WATCH_TITLE = """() => { window.sdfleetTitles = [document.title];
    new MutationObserver(() => window.sdfleetTitles.push(document.title))
        .observe(document.querySelector('title'), {childList: true, characterData: true, subtree: true}); }"""
OUTPUT_SHOWN = """() => { const save = app.graph._nodes.find((n) => n.type === 'SaveImage');
    const img = save?.imgs?.[0]; return img && img.complete && img.naturalWidth === 64 ? img.src : null; }"""


def _frame_type(frame) -> str:
    return json.loads(frame)["type"] if isinstance(frame, str) else "binary-preview"


def test_frontend_opens_the_sd_template_queues_it_on_the_fleet_and_shows_the_image(fleet, page):
    fleet.start_worker("w")
    page.set_viewport_size({"width": 1920, "height": 1080})  # the whole graph legible at FitView's zoom
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    console: list[tuple[str, str]] = []
    page.on("console", lambda m: console.append((m.text, m.location.get("url", ""))) if m.type == "error" else None)
    received: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: received.append(_frame_type(f))))

    # 1. Log in through the web UI's form and land on the frontend
    sign_in(page, fleet.url, path="/comfy/")
    page.wait_for_function("window.app?.graph?._nodes.length > 0", timeout=60_000)
    # sdfleet's extension replaced the frontend's built-in default (a model family sdfleet does not run)
    first = page.evaluate(GRAPH_NODES)
    assert {"type": "CheckpointLoaderSimple", "widgets": {"ckpt_name": "demo-sd15.safetensors"}} in first, first

    # 2. Open sdfleet's SD txt2img template from the sdfleet menu, on an empty canvas
    page.evaluate("() => app.graph.clear()")
    assert page.evaluate("() => app.graph._nodes.length") == 0
    page.get_by_test_id("comfy-menu-button").click()
    page.get_by_role("menuitem", name="sdfleet").hover()
    page.get_by_role("menuitem", name="Open template: SD 1.x txt2img (demo-sd15.safetensors)").click()
    page.wait_for_function("app.graph._nodes.length === 7")
    nodes = page.evaluate(GRAPH_NODES)
    types = sorted(n["type"] for n in nodes)
    assert types == sorted(["CheckpointLoaderSimple", "CLIPTextEncode", "CLIPTextEncode", "EmptyLatentImage",
                            "KSampler", "VAEDecode", "SaveImage"]), types
    sampler = next(n["widgets"] for n in nodes if n["type"] == "KSampler")
    assert sampler["steps"] == 4 and sampler["sampler_name"] == "euler"
    page.keyboard.press("Escape")
    # The canvas loads a node's output images when it draws the node: show all of them
    page.evaluate("() => app.extensionManager.command.execute('Comfy.Canvas.FitView')")
    screenshot(page, "comfy-template")

    # 3. Queue it with the Run button and watch the progress in the page title
    page.evaluate(WATCH_TITLE)
    page.locator('[data-testid="queue-button"]').click()
    # "[0%][50%] KSampler": the workflow's and the running node's progress
    page.wait_for_function("window.sdfleetTitles.some((t) => /\\[[1-9]\\d*%\\]/.test(t))", timeout=120_000)
    screenshot(page, "comfy-progress")

    # 4. The output image, fetched from /comfy/api/view with the session cookie, shows in the Save Image node
    src = page.wait_for_function(OUTPUT_SHOWN, timeout=120_000).json_value()
    assert urlsplit(src).path == "/comfy/api/view" and "type=output" in src, src
    page.wait_for_function("!/\\[\\d+%\\]/.test(document.title)")  # the run is over
    screenshot(page, "comfy-output")

    # 5. What drove the page: upstream's message sequence over the WebSocket
    order = [t for t in received if t in ("execution_start", "progress", "executed", "execution_success")]
    assert order[0] == "execution_start" and order[-2:] == ["executed", "execution_success"], received
    assert "progress" in order and "binary-preview" in received, received
    titles = page.evaluate("window.sdfleetTitles")
    assert any(re.search(r"\[[1-9]\d*%\] KSampler", t) for t in titles), titles

    # 6. No console error from a missing or malformed route
    ours = [f for f in failed if not COSMETIC.match(urlsplit(f.split(" ", 1)[1]).path)]
    errors = [(text, url) for text, url in console if not COSMETIC.match(urlsplit(url).path)]
    assert not ours and not errors, (ours, errors)
