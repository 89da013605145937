"""The official ComfyUI frontend, unmodified, in a real Chromium: sdfleet's SD template queued on a real worker."""

from __future__ import annotations

import json

import pytest

from tests.browser.web_session import sign_in
from tests.fixtures.browser import screenshot

pytestmark = pytest.mark.timeout(240)


def test_explore(fleet, page):
    fleet.start_worker("w")
    bad = []
    page.on("response", lambda r: bad.append((r.status, r.url)) if r.status >= 400 else None)
    frames = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(f if isinstance(f, str) else "<bin>")))
    sign_in(page, fleet.url, path="/comfy/")
    page.wait_for_function("window.app?.graph?._nodes.length > 0", timeout=60_000)
    page.wait_for_timeout(3000)
    screenshot(page, "comfy-explore-open")
    nodes = page.evaluate("app.graph._nodes.map(n => [n.id, n.type, (n.widgets||[]).map(w => [w.name, w.value])])")
    print(json.dumps(nodes))
    print("templates", page.evaluate("(window.sdfleetTemplates||[]).map(t => t.name)"))
    page.click('[data-testid="queue-button"]')
    page.wait_for_timeout(15000)
    screenshot(page, "comfy-explore-run")
    print("title", page.title())
    print("imgs", page.evaluate("[...document.querySelectorAll('img')].map(i => [i.src, i.naturalWidth])"))
    print("node imgs", page.evaluate("app.graph._nodes.map(n => [n.id, (n.imgs||[]).map(i=>i.src)])"))
    print("frames", [f[:150] for f in frames])
    print("console", page.console_errors)
    print("bad", bad)
