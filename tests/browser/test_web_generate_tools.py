"""Generate-page tools in a real Chromium: inpaint brush/eraser/undo/zoom/blur/invert, PNG in → parameters
out (A1111 and ComfyUI PNGs), size presets and swap, settings remembered on the server across machines."""

from __future__ import annotations

import base64
import io
import json

import httpx
import pytest
from PIL import Image, PngImagePlugin
from playwright.sync_api import expect

from tests.browser.scripted_worker import output_png
from tests.browser.test_web_generate_fixes import MODEL, open_generate
from tests.browser.web_session import png_bytes, set_value, sign_in
from tests.fixtures.browser import screenshot

pytestmark = pytest.mark.timeout(180)
PAINTED = """() => { const c = document.getElementById('mask-canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 127) n++; return n; }"""


def stroke(page, start: float, end: float) -> None:
    page.locator("#mask-canvas").scroll_into_view_if_needed()
    box = page.locator("#mask-canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * start, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * end, box["y"] + box["height"] * 0.5, steps=6)
    page.mouse.up()


def drop_file(page, selector: str, data: bytes, name: str) -> None:
    page.evaluate("""([selector, b64, name]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, {type: 'image/png'}));
        document.querySelector(selector).dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true,
                                                                              cancelable: true}));
    }""", [selector, base64.b64encode(data).decode(), name])


def test_inpaint_tools_and_what_the_job_gets(web, admin_page, admin_headers):
    page = admin_page
    open_generate(page, web)
    page.get_by_text("Inpaint", exact=True).click()
    page.set_input_files("#init-file", files=[{"name": "in.png", "mimeType": "image/png", "buffer": png_bytes(96)}])
    expect(page.locator("#init-source")).to_contain_text("in.png · 96×96")
    page.locator("#mask-canvas").scroll_into_view_if_needed()
    stroke(page, 0.2, 0.8)
    first = page.evaluate(PAINTED)
    assert first > 0
    page.get_by_role("button", name="Undo").click()
    assert page.evaluate(PAINTED) == 0
    stroke(page, 0.2, 0.8)
    page.get_by_text("Eraser", exact=True).click()
    assert page.evaluate("document.querySelector('input[name=mask-tool]:checked').value") == "eraser"
    stroke(page, 0.5, 0.8)
    erased = page.evaluate(PAINTED)
    assert 0 < erased < first
    page.get_by_role("button", name="Zoom").click()
    expect(page.locator("#stage")).to_have_class("stage zoomed")
    assert page.locator("#mask-canvas").bounding_box()["width"] > page.locator("#stage").bounding_box()["width"]
    page.get_by_role("button", name="Zoom").click()
    set_value(page, "#mask_blur", 12)
    page.get_by_label("Repaint outside the mask").check()
    page.get_by_label("Only masked", exact=True).check()
    set_value(page, "#inpaint_full_res_padding", 16)
    page.get_by_label("Prompt", exact=True).fill("inpaint tools")
    page.get_by_label("Width").fill("96")
    page.get_by_label("Height").fill("96")
    screenshot(page, "web-inpaint-tools")
    page.get_by_role("button", name="Generate").click()
    card = page.locator("article.job").first
    expect(card.locator(".prompt")).to_have_text("inpaint tools")
    job = httpx.get(f"{web.url}/api/v1/inferences/{card.get_attribute('data-job-id')}", headers=admin_headers).json()
    assert job["params"]["mask_blur"] == 12 and job["params"]["inpainting_mask_invert"] == 1
    assert job["params"]["inpaint_full_res"] is True and job["params"]["inpaint_full_res_padding"] == 16
    card.get_by_role("button", name="Cancel").click()
    page.get_by_text("Text to image", exact=True).click()


def test_a_dropped_png_fills_the_form(web, admin_page):
    page = admin_page
    open_generate(page, web)
    infotext = ("a castle at dawn\nNegative prompt: fog\nSteps: 17, Sampler: Euler, Schedule type: Karras, "
                "CFG scale: 5.5, Seed: 4242, Size: 128x96, Model hash: 0000, Model: demo-sdxl")
    drop_file(page, "#generate-page", output_png(128, 96, text=infotext), "a1111.png")
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("a castle at dawn")
    for field, value in {"#negative_prompt": "fog", "#steps": "17", "#cfg_scale": "5.5", "#seed": "4242",
                         "#width": "128", "#height": "96", "#model": "demo-sdxl.safetensors"}.items():
        expect(page.locator(field)).to_have_value(value)
    expect(page.get_by_label("Schedule type")).to_have_value("Karras")
    expect(page.locator("#mode-txt2img")).to_be_checked()

    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 7, "steps": 9, "cfg": 4.0, "sampler_name": "euler",
                                                        "scheduler": "exponential", "positive": ["6", 0],
                                                        "negative": ["7", 0]}},
             "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a comfy fox"}},
             "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "ugly"}},
             "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 72, "batch_size": 1}},
             "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": MODEL}}}
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(graph))
    out = io.BytesIO()
    Image.new("RGB", (64, 72), "blue").save(out, format="PNG", pnginfo=info)
    drop_file(page, "#generate-page", out.getvalue(), "comfy.png")
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("a comfy fox")
    expect(page.locator("#sampler")).to_have_value("Euler")
    expect(page.get_by_label("Schedule type")).to_have_value("Exponential")
    for field, value in {"#negative_prompt": "ugly", "#steps": "9", "#seed": "7", "#height": "72", "#model": MODEL}.items():
        expect(page.locator(field)).to_have_value(value)

    page.get_by_text("Image to image", exact=True).click()
    drop_file(page, "#init-drop", out.getvalue(), "comfy.png")
    expect(page.locator("#init-source")).to_contain_text("comfy.png · 64×72")
    screenshot(page, "web-png-in")
    page.get_by_text("Text to image", exact=True).click()


def test_size_presets_swap_and_settings_follow_the_user(web, admin_page, browser):
    page = admin_page
    open_generate(page, web)
    page.get_by_label("Width").fill("512")
    page.get_by_label("Height").fill("768")
    page.get_by_role("button", name="Swap the image sides").click()
    expect(page.get_by_label("Width")).to_have_value("768")
    expect(page.get_by_label("Height")).to_have_value("512")
    page.get_by_role("button", name="16:9").click()
    expect(page.get_by_label("Width")).to_have_value("768")
    expect(page.get_by_label("Height")).to_have_value("432")
    page.get_by_role("button", name="2:3").click()
    expect(page.get_by_label("Width")).to_have_value("512")
    expect(page.get_by_label("Height")).to_have_value("768")
    page.get_by_label("Sampler").select_option("DPM++ 2M")
    set_value(page, "#steps", 11)
    with page.expect_response(lambda r: r.url.endswith("/me/preferences") and r.request.method == "PATCH"):
        page.get_by_label("Negative prompt").fill("remember me")

    other = browser.new_context(viewport={"width": 1280, "height": 800})  # another machine, same user
    try:
        second = other.new_page()
        sign_in(second, web.url)
        expect(second.locator("body[data-ready=yes]")).to_have_count(1)
        expect(second.get_by_label("Negative prompt")).to_have_value("remember me")
        expect(second.get_by_label("Sampler")).to_have_value("DPM++ 2M")
        expect(second.locator("#steps")).to_have_value("11")
        expect(second.get_by_label("Height")).to_have_value("768")
    finally:
        other.close()
    page.get_by_label("Negative prompt").fill("")
    assert not page.console_errors, page.console_errors


def test_progress_words_for_steps_eta_and_loading_model(web, admin_page):
    """The card's progress line: step, elapsed, estimate; "Loading model …" for the worker's loading phase."""
    page = admin_page
    open_generate(page, web)
    words = page.evaluate("""async () => {
        const { progressText } = await import('/static/jobcard.js');
        const started = Date.now() - 14000;
        return [progressText({value: 7, max: 20}, started, started + 14000),
                progressText({value: 0, max: 0, phase: 'loading_model', model: 'demo-sd15.safetensors'}, started)];
    }""")
    assert words == ["Step 7/20 · 14 s elapsed · about 26 s left", "Loading model demo-sd15.safetensors…"]
