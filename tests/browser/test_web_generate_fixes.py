"""The generate page's bugs of issue 18, each a test that failed on the old page: reuse restores every field,
the Generate button covers nothing, the model's full `name [hash]`, jobs without a prompt, keyboard, inline
validation with the server's limits, the cancelled preview, send to img2img, delete confirmation, 768 px."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.browser.scripted_worker import ScriptedWorker, output_png
from tests.browser.web_session import png_bytes
from tests.fixtures.browser import screenshot

pytestmark = pytest.mark.timeout(180)
MODEL = "demo-sd15.safetensors"


def submit(web, headers, *, task: str = "txt2img", **params) -> str:
    body = {"prompt": "a red fox", "steps": 3, "width": 64, "height": 64,
            "override_settings": {"sd_model_checkpoint": MODEL}, **params}
    r = httpx.post(f"{web.url}/api/v1/inferences", headers=headers, json={"task": task, "params": body})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def clear_queue(web, headers) -> None:
    """Cancel every queued job, so the scripted worker claims the next one submitted."""
    queued = httpx.get(f"{web.url}/api/v1/inferences?status=queued&limit=100", headers=headers).json()["items"]
    for job in queued:
        httpx.post(f"{web.url}/api/v1/inferences/{job['id']}/cancel", headers=headers)


def b64png(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def mask_png(size: int = 64) -> bytes:
    mask = Image.new("RGB", (size, size), "black")
    mask.paste((255, 255, 255), (8, 8, 40, 40))
    out = io.BytesIO()
    mask.save(out, format="PNG")
    return out.getvalue()


def open_generate(page, web) -> None:
    page.goto(f"{web.url}/")
    expect(page.locator("body[data-ready=yes]")).to_have_count(1)
    expect(page.locator("#model-title")).to_contain_text(MODEL)


def card(page, job_id: str):
    return page.locator(f'article.job[data-job-id="{job_id}"]')


def test_reuse_restores_every_field(web, admin_page, admin_headers):
    page = admin_page
    job_id = submit(web, admin_headers, task="img2img", prompt="a fox <lora:demo-lora:0.6>", negative_prompt="blurry",
                    sampler_name="Euler", scheduler="Exponential", steps=5, cfg_scale=6.5, width=96, height=64,
                    seed=77, batch_size=2, n_iter=3, denoising_strength=0.4, mask_blur=9, inpainting_mask_invert=1,
                    init_images=[b64png(png_bytes(64))], mask=b64png(mask_png()))
    open_generate(page, web)
    card(page, job_id).get_by_role("button", name="Reuse parameters").click()
    expect(page.locator("#stage")).to_be_visible()
    expect(page.locator("#mode-inpaint")).to_be_checked()
    expect(page.get_by_label("Sampler")).to_have_value("Euler")
    expect(page.get_by_label("Schedule type")).to_have_value("Exponential")
    for field, value in {"#prompt": "a fox <lora:demo-lora:0.6>", "#negative_prompt": "blurry", "#steps": "5",
                         "#cfg_scale": "6.5", "#width": "96", "#height": "64", "#seed": "77", "#batch_size": "2",
                         "#n_iter": "3", "#denoising_strength": "0.4", "#mask_blur": "9"}.items():
        expect(page.locator(field)).to_have_value(value)
    expect(page.locator("#inpainting_mask_invert")).to_be_checked()
    expect(page.locator("#model")).to_have_value(MODEL)
    painted = page.evaluate("""() => { const c = document.getElementById('mask-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return [n, c.width * c.height]; }""")
    assert 0 < painted[0] < painted[1], painted
    assert page.evaluate("document.getElementById('init-preview').naturalWidth") == 64
    screenshot(page, "web-fix-reuse-inpaint")


@pytest.mark.parametrize("size", [(1440, 900), (1366, 768)], ids=["1440x900", "1366x768"])
def test_generate_button_covers_no_field(web, admin_page, size):
    page = admin_page
    page.set_viewport_size({"width": size[0], "height": size[1]})
    try:
        open_generate(page, web)
        covered = page.evaluate("""() => {
            const button = document.getElementById('generate');
            const out = [];
            for (const el of document.querySelectorAll('#gen-form input, #gen-form select, #gen-form textarea, #gen-form button')) {
              if (el === button || el.type === 'hidden' || el.type === 'radio' || el.classList.contains('sr-only')
                  || el.closest('[hidden]') || !el.getClientRects().length) continue;
              el.scrollIntoView({block: 'nearest'});
              const r = el.getBoundingClientRect();
              const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
              const labelled = el.labels && [...el.labels].some((l) => l.contains(hit));
              if (!(hit === el || el.contains(hit) || labelled)) out.push(el.id || el.name);
            }
            return out; }""")
        assert covered == [], f"covered at {size}: {covered}"
        page.locator("#batch_size").scroll_into_view_if_needed()
        screenshot(page, f"web-fix-sticky-button-{size[0]}x{size[1]}")
    finally:
        page.set_viewport_size({"width": 1280, "height": 800})


def test_model_control_shows_the_full_name_and_hash(web, admin_page, admin_headers):
    page = admin_page
    open_generate(page, web)
    short = next(m["short_hash"] for m in httpx.get(f"{web.url}/api/v1/checkpoints", headers=admin_headers).json()["items"]
                 if m["name"] == MODEL)
    control = page.get_by_label("Model", exact=True)
    shown = control.evaluate("""(el) => {
        if (el.tagName === 'SELECT') {
          const text = el.selectedOptions[0].text, style = getComputedStyle(el);
          const ctx = document.createElement('canvas').getContext('2d'); ctx.font = style.font;
          const room = el.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 20;
          return {text, clipped: ctx.measureText(text).width > room};
        }
        return {text: el.innerText, clipped: el.scrollWidth > el.clientWidth}; }""")
    assert f"{MODEL} [{short}]" in shown["text"] and not shown["clipped"], shown
    control.click()
    page.get_by_label("Search models").fill("sdxl")
    expect(page.locator("#model-list [role=option]")).to_have_count(1)
    page.keyboard.press("Enter")
    expect(page.locator("#model")).to_have_value("demo-sdxl.safetensors")
    screenshot(page, "web-fix-model-title")
    page.get_by_label("Model", exact=True).click()
    page.get_by_label("Search models").fill("sd15")
    page.keyboard.press("Enter")
    expect(page.locator("#model")).to_have_value(MODEL)


def test_a_job_without_prompt_is_named_so(web, admin_page, admin_headers):
    page = admin_page
    job_id = submit(web, admin_headers, prompt="")
    open_generate(page, web)
    expect(card(page, job_id).locator(".job-head .prompt")).to_have_text("(empty prompt)")
    page.goto(f"{web.url}/gallery")
    expect(page.locator(f'article.card[data-job-id="{job_id}"] .prompt')).to_have_text("(empty prompt)")


def test_keyboard_ctrl_enter_generates_enter_does_not_esc_cancels(web, admin_page):
    page = admin_page
    open_generate(page, web)
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/api/v1/inferences") else None)
    before = page.locator("article.job").count()
    page.get_by_label("Prompt", exact=True).fill("keyboard fox")
    page.get_by_label("Width").fill("64")
    page.get_by_label("Width").press("Enter")  # must not submit
    page.get_by_label("Prompt", exact=True).press("Control+Enter")
    expect(page.locator("article.job")).to_have_count(before + 1)
    newest = page.locator("article.job").first
    expect(newest.locator(".prompt")).to_have_text("keyboard fox")
    assert len(posts) == 1, posts
    page.locator("body").press("Escape")
    expect(newest).to_have_attribute("data-status", "cancelled")


def test_fields_are_checked_inline_with_the_server_limits(web, admin_page, admin_headers):
    page = admin_page
    open_generate(page, web)
    limits = httpx.get(f"{web.url}/api/v1/generation/options", headers=admin_headers).json()["limits"]
    expect(page.get_by_label("Batch size")).to_have_attribute("max", str(limits["batch_size"]["max"]))
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/inferences") else None)

    page.get_by_label("Width").fill("513")
    page.get_by_label("Width").press("Tab")
    expect(page.get_by_label("Width")).to_have_value("512")

    page.get_by_label("Width").fill("")
    page.get_by_label("Batch size").fill(str(limits["batch_size"]["max"] + 1))
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#width-error")).to_have_text("Width is required")
    expect(page.get_by_label("Width")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Width")).to_be_focused()
    page.get_by_label("Width").fill("64")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#batch_size-error")).to_contain_text(f"between 1 and {limits['batch_size']['max']}")
    expect(page.locator("#width-error")).to_have_text("")
    assert posts == [] and page.locator(".toast.error").count() == 0
    screenshot(page, "web-fix-inline-validation")
    page.get_by_label("Batch size").fill("1")


def test_cancelled_job_labels_its_last_preview(web, admin_page, admin_headers):
    page = admin_page
    clear_queue(web, admin_headers)
    job_id = submit(web, admin_headers, prompt="cancel me")
    worker = ScriptedWorker(web, "cancel-preview")
    held = worker.claim()
    assert held["id"] == job_id
    worker.progress(held, 1, 3, preview=output_png(64, 64, seed=5))
    open_generate(page, web)
    job = card(page, job_id)
    expect(job.locator("img[data-role=preview]")).to_be_visible()
    expect(job.locator("[data-role=detail]")).to_contain_text("Step 1/3")
    job.get_by_role("button", name="Cancel").click()
    expect(page.locator(".toast", has_text="Cancel requested")).to_be_visible()
    assert worker.progress(held, 1, 3)["cancel_requested"]
    worker.cancelled(held)
    expect(job).to_have_attribute("data-status", "cancelled")
    expect(job.locator(".preview figcaption")).to_have_text("Last preview before cancelling at step 1/3")
    screenshot(page, "web-fix-cancelled-preview")


def test_send_to_img2img_names_its_source_once_and_delete_asks_first(web, admin_page, admin_headers):
    page = admin_page
    clear_queue(web, admin_headers)
    job_id = submit(web, admin_headers, prompt="send me")
    ScriptedWorker(web, "send").run_next()
    open_generate(page, web)
    job = card(page, job_id)
    expect(job).to_have_attribute("data-status", "succeeded")
    job.get_by_role("button", name="Send to img2img").click()
    expect(page.locator("#init-source")).to_contain_text(f"Output 1 of job {job_id[-6:]}")
    expect(page.locator("#mode-img2img")).to_be_checked()
    expect(page.locator(".toast")).to_have_count(1)
    screenshot(page, "web-fix-send-to-img2img")

    job.get_by_role("button", name="Delete").click()
    expect(page.locator("#confirm-dialog")).to_be_visible()
    page.locator("#confirm-cancel").click()
    expect(job).to_be_visible()
    job.get_by_role("button", name="Delete").click()
    page.locator("#confirm-ok").click()
    expect(job).to_have_count(0)
    assert httpx.get(f"{web.url}/api/v1/inferences/{job_id}", headers=admin_headers).status_code == 404


def test_narrow_window_header_fits_and_new_card_is_shown(web, admin_page):
    page = admin_page
    page.set_viewport_size({"width": 768, "height": 1000})
    try:
        open_generate(page, web)
        assert page.locator("header.topbar").bounding_box()["height"] <= 64
        page.get_by_label("Prompt", exact=True).fill("narrow fox")
        page.get_by_role("button", name="Generate").click()
        newest = page.locator("article.job").first
        expect(newest.locator(".prompt")).to_have_text("narrow fox")
        expect(newest).to_be_in_viewport()
        screenshot(page, "web-fix-768")
        newest.get_by_role("button", name="Cancel").click()
        expect(newest).to_have_attribute("data-status", "cancelled")
    finally:
        page.set_viewport_size({"width": 1280, "height": 800})
    assert not page.console_errors, page.console_errors
