"""The generate page in a real Chromium: txt2img with progress, inpaint with a drawn mask, cancel."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.web_session import png_bytes, set_value, sign_in
from tests.fixtures.browser import screenshot

pytestmark = pytest.mark.timeout(240)


def fill_small_job(page, prompt: str, *, steps: int = 3) -> None:
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_label("Model", exact=True).click()
    page.get_by_label("Search models").fill("demo-sd15")
    page.keyboard.press("Enter")
    set_value(page, "#steps", steps)
    page.get_by_label("Width").fill("64")
    page.get_by_label("Height").fill("64")


def test_txt2img_then_inpaint_with_a_drawn_mask(fleet, page):
    fleet.start_worker("web")
    bad = []
    page.on("response", lambda r: bad.append(r.url) if r.status >= 400 else None)
    sign_in(page, fleet.url)
    expect(page.get_by_label("Model", exact=True)).to_contain_text("demo-sd15")
    screenshot(page, "web-generate-empty")

    # 1. txt2img: progress bar and the image
    fill_small_job(page, "a red fox in the snow")
    page.get_by_label("Seed", exact=True).fill("1234")
    page.get_by_role("button", name="Generate").click()
    card = page.locator("article.job").first
    expect(card.get_by_role("progressbar")).to_be_visible()
    expect(card).to_have_attribute("data-status", "succeeded", timeout=120_000)
    expect(card.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    image = card.locator(".images img").first
    expect(image).to_be_visible()
    # the thumbnail is lazy-loaded: wait for it to be decoded rather than expect it at once
    page.wait_for_function("(img) => img.complete && img.naturalWidth === 64", arg=image.element_handle())
    expect(card.locator(".params")).to_contain_text("Seed: 1234")
    screenshot(page, "web-generate-result")

    # 2. reuse parameters puts the seed back
    page.get_by_label("Seed", exact=True).fill("-1")
    card.get_by_role("button", name="Reuse parameters").click()
    expect(page.get_by_label("Seed", exact=True)).to_have_value("1234")

    # 3. inpaint: upload an image, paint a mask, generate
    page.locator("#mode").get_by_text("Inpaint", exact=True).click()  # the image viewer has an Inpaint button too
    page.set_input_files("#init-file", files=[{"name": "in.png", "mimeType": "image/png", "buffer": png_bytes()}])
    canvas = page.locator("#mask-canvas")
    expect(canvas).to_be_visible()
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.7, steps=8)
    page.mouse.up()
    white = page.evaluate("""() => { const c = document.getElementById('mask-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return [n, c.width * c.height]; }""")
    assert 0 < white[0] < white[1], white
    page.get_by_label("Prompt", exact=True).fill("a blue flower")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("article.job")).to_have_count(2)
    inpaint = page.locator("article.job").first
    expect(inpaint).to_have_attribute("data-status", "succeeded", timeout=120_000)
    expect(inpaint.locator(".images img")).to_have_count(1)
    screenshot(page, "web-inpaint")

    headers = fleet.login()
    job_id = inpaint.get_attribute("data-job-id")
    job = httpx.get(f"{fleet.url}/api/v1/inferences/{job_id}", headers=headers).json()
    assert job["task"] == "img2img" and job["status"] == "succeeded"
    claimed_graph = fleet.server.runtime.services.inference.get(
        fleet.server.runtime.services.auth.authenticate(headers["Authorization"].split()[1]), job_id)
    assert "LoadImageMask" in str(claimed_graph.spec), "the drawn mask reached the graph"
    assert not page.console_errors, (page.console_errors, bad)


def test_cancel_a_queued_job_from_the_page(fleet, page):
    sign_in(page, fleet.url)
    fill_small_job(page, "never runs: no worker")
    page.get_by_role("button", name="Generate").click()
    card = page.locator("article.job").first
    expect(card).to_have_attribute("data-status", "queued")
    card.get_by_role("button", name="Cancel").click()
    expect(card).to_have_attribute("data-status", "cancelled", timeout=20_000)
    screenshot(page, "web-generate-cancelled")
