"""The gallery, the image viewer, the queue and the prompt tools in a real Chromium (issue 18)."""

from __future__ import annotations

import io
import re
import zipfile

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.scripted_worker import ScriptedWorker
from tests.browser.test_web_generate_fixes import clear_queue, open_generate, submit
from tests.browser.web_session import sign_in
from tests.fixtures.browser import screenshot

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def made(web, admin_headers):
    """Two finished jobs of the admin with two images each, and one queued job of an artist."""
    clear_queue(web, admin_headers)
    worker = ScriptedWorker(web, "gallery")
    ids = []
    for prompt in ("a red fox in snow", "a black cat on a roof"):
        ids.append(submit(web, admin_headers, prompt=prompt, batch_size=2, width=96))
        assert worker.run_next(size=(96, 64), count=2) == ids[-1]
    r = httpx.post(f"{web.url}/api/v1/users", headers=admin_headers,
                   json={"username": "gal-artist", "password": "user-password-1", "roles": ["artist"]})
    assert r.status_code == 201, r.text
    artist = web.login("gal-artist", "user-password-1")
    artist_job = submit(web, artist, prompt="the artist's owl")
    return {"fox": ids[0], "cat": ids[1], "artist": artist, "artist_job": artist_job}


def open_gallery(page, web, query: str = "") -> None:
    page.goto(f"{web.url}/gallery{query}")
    expect(page.locator("body[data-ready=yes]")).to_have_count(1)


def test_viewer_walks_batch_and_history_zooms_compares_and_reuses(web, admin_page, made):
    page = admin_page
    open_gallery(page, web, "?status=succeeded")
    thumbs = page.locator("article.card img")
    expect(thumbs).to_have_count(2)
    assert all(src.endswith("/outputs/0/thumbnail") for src in thumbs.evaluate_all("els => els.map(e => e.src)"))
    page.locator(f'article.card[data-job-id="{made["cat"]}"] [data-role=open]').click()
    viewer = page.locator("#viewer")
    expect(viewer).to_be_visible()
    expect(page.locator("#viewer-count")).to_have_text("Image 1 of 2 · job 1 of 2")
    expect(page.locator("#viewer-img")).to_have_attribute("src", f"/api/v1/gallery/{made['cat']}/outputs/0")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#viewer-count")).to_have_text("Image 2 of 2 · job 1 of 2")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#viewer-count")).to_have_text("Image 1 of 2 · job 2 of 2")
    expect(page.locator("#viewer-title")).to_have_text("a red fox in snow")
    page.keyboard.press("1")
    expect(viewer).to_have_attribute("data-scale", "100")
    page.keyboard.press("+")
    expect(viewer).to_have_attribute("data-scale", "125")
    page.keyboard.press("0")
    page.keyboard.press("c")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#viewer-compare-bar")).to_be_visible()
    expect(page.locator("#viewer-b-label")).to_contain_text("a red fox in snow #1")
    expect(page.locator("#viewer-a-label")).to_contain_text("a black cat on a roof #2")
    screenshot(page, "web-viewer-compare")
    page.locator("#viewer-star").click()
    expect(page.locator("#viewer-star")).to_have_attribute("aria-pressed", "true")
    page.locator("#viewer-reuse").click()
    page.wait_for_url(f"{web.url}/")
    expect(page.locator("body[data-ready=yes]")).to_have_count(1)
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("a black cat on a roof")
    expect(page.locator("#width")).to_have_value("96")
    expect(page.locator("#batch_size")).to_have_value("2")


def test_model_preview_from_the_viewer_notes_and_the_picker(web, admin_page, made):
    page = admin_page
    open_gallery(page, web, "?q=fox")
    page.locator(f'article.card[data-job-id="{made["fox"]}"] [data-role=open]').click()
    page.locator("#viewer-preview").click()
    expect(page.locator(".toast", has_text="Preview of demo-sd15.safetensors set")).to_be_visible()
    page.keyboard.press("Escape")

    page.goto(f"{web.url}/models")
    row = page.locator('tr[data-model-name="demo-sd15.safetensors"]')
    expect(row.locator(".preview-cell img")).to_be_visible()
    row.get_by_role("button", name="Edit").click()
    page.get_by_label("Trigger words").fill("sks fox")
    page.get_by_label("Notes").fill("best at CFG 5")
    page.locator("#model-edit-save").click()
    expect(row).to_contain_text("Trigger: sks fox")

    open_generate(page, web)
    expect(page.locator("#model-button img")).to_be_visible()
    expect(page.locator("#model-triggers")).to_contain_text("Trigger words: sks fox")
    page.get_by_label("Prompt", exact=True).fill("a hill")
    page.get_by_role("button", name="Insert trigger words").click()
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("a hill, sks fox")
    page.get_by_label("Model", exact=True).click()
    page.get_by_label("Search models").fill("sks")
    expect(page.locator("#model-list [role=option]")).to_have_count(1)
    expect(page.locator("#model-list [role=option] img")).to_be_visible()
    screenshot(page, "web-model-picker")
    page.keyboard.press("Escape")


def test_gallery_search_star_board_zip_and_delete(web, admin_page, admin_headers, made):
    page = admin_page
    open_gallery(page, web)
    page.get_by_label("Prompt contains").fill("FOX")
    expect(page.locator("article.card")).to_have_count(1)
    expect(page).to_have_url(f"{web.url}/gallery?q=FOX")
    page.get_by_label("Prompt contains").fill("")
    expect(page.locator("article.card[data-status=succeeded]")).to_have_count(2)
    page.locator(f'article.card[data-job-id="{made["fox"]}"] [data-role=star]').click()
    page.get_by_label("Starred only").check()
    expect(page.locator("article.card")).to_have_count(2)  # the cat was starred in the viewer
    page.get_by_label("Starred only").uncheck()

    page.get_by_label("New board name").fill("Keepers")
    page.get_by_role("button", name="Create board").click()
    expect(page.locator(".toast", has_text="Board Keepers created")).to_be_visible()
    page.get_by_label("Status").select_option("succeeded")
    expect(page.locator("#gallery")).to_have_attribute("data-query", "status=succeeded")
    expect(page.locator("article.card")).to_have_count(2)
    page.get_by_label("Select this page").check()
    expect(page.locator("#selected-count")).to_have_text("2 selected")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator(".toast", has_text="Keepers: 2 job(s)")).to_be_visible()
    page.get_by_label("Board", exact=True).select_option(label="Keepers (2)")
    expect(page.locator("#gallery")).to_have_attribute("data-query", re.compile("board="))
    expect(page.locator("article.card")).to_have_count(2)
    page.get_by_label("Select this page").check()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download zip").click()
    names = zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read())).namelist()
    assert sorted(names) == sorted(f"{j}-{i}.png" for j in (made["fox"], made["cat"]) for i in (0, 1))
    screenshot(page, "web-gallery-board")

    page.locator(f'article.card[data-job-id="{made["fox"]}"] .card-line input').uncheck()
    page.locator(f'article.card[data-job-id="{made["cat"]}"] .card-line input').check()
    page.get_by_role("button", name="Delete", exact=True).first.click()
    page.locator("#confirm-ok").click()
    expect(page.locator("article.card")).to_have_count(1)
    assert httpx.get(f"{web.url}/api/v1/inferences/{made['cat']}", headers=admin_headers).status_code == 404


def test_team_gallery_and_queue_for_leads_not_artists(web, browser, admin_page, made):
    page = admin_page
    open_gallery(page, web)
    page.get_by_label("Whose").select_option("team")
    expect(page.locator(f'article.card[data-job-id="{made["artist_job"]}"]')).to_contain_text("by gal-artist")
    expect(page.locator(f'article.card[data-job-id="{made["artist_job"]}"] [data-role=delete]')).to_have_count(0)
    screenshot(page, "web-gallery-team")

    page.goto(f"{web.url}/queue")
    page.get_by_role("tab", name="Everyone's jobs").click()
    row = page.locator(f'tr[data-job-id="{made["artist_job"]}"]')
    expect(row).to_contain_text("gal-artist")
    expect(row.locator("td.position")).to_have_text("1")
    screenshot(page, "web-queue-everyone")

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    artist = context.new_page()
    try:
        sign_in(artist, web.url, username="gal-artist", password="user-password-1")
        expect(artist.locator("body[data-ready=yes]")).to_have_count(1)
        card = artist.locator(f'article.job[data-job-id="{made["artist_job"]}"]')
        expect(card.locator("[data-role=detail]")).to_have_text("Queued · position 1")
        screenshot(artist, "web-queue-position")
        artist.goto(f"{web.url}/gallery")
        expect(artist.locator("#filter-scope")).to_have_count(0)
        artist.goto(f"{web.url}/queue")
        expect(artist.get_by_role("tab", name="Everyone's jobs")).to_have_count(0)
    finally:
        context.close()
    row.get_by_role("button", name="Cancel").click()
    page.locator("#confirm-ok").click()
    expect(row).to_have_count(0)


def test_prompt_history_styles_and_presets(web, admin_page, made):
    page = admin_page
    open_generate(page, web)
    page.get_by_role("button", name="History").click()
    page.get_by_label("Search your prompts").fill("fox")
    page.locator("[data-role=history-item]", has_text="a red fox in snow").click()
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("a red fox in snow")

    page.get_by_role("button", name="Styles").click()
    page.get_by_label("Prompt", exact=True).evaluate("el => el.value = 'cinematic still of {prompt}'")
    page.get_by_label("Style name").fill("Cinematic")
    page.get_by_label("Team style").check()
    page.get_by_role("button", name="Save style").click()
    expect(page.locator('#styles-list [data-style="Cinematic"]')).to_contain_text("team")
    page.keyboard.press("Escape")
    page.get_by_label("Prompt", exact=True).fill("a lighthouse")
    page.get_by_role("button", name="Styles").click()
    page.locator('#styles-list [data-style="Cinematic"] input').check()
    page.get_by_role("button", name="Apply checked styles to the prompt").click()
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("cinematic still of a lighthouse")
    styles = httpx.get(f"{web.url}/sdapi/v1/prompt-styles", headers=web.login()).json()
    assert {"name": "Cinematic", "prompt": "cinematic still of {prompt}", "negative_prompt": ""} in styles

    page.get_by_label("Width").fill("128")
    page.get_by_role("button", name="Presets").click()
    page.get_by_label("Save the current settings as").fill("Wide")
    page.get_by_role("button", name="Save preset").click()
    expect(page.locator('#presets-list [data-preset="Wide"]')).to_be_visible()
    screenshot(page, "web-presets")
    page.keyboard.press("Escape")
    page.get_by_label("Width").fill("64")
    page.get_by_role("button", name="Presets").click()
    page.locator('#presets-list [data-preset="Wide"] .tool-item').click()
    expect(page.get_by_label("Width")).to_have_value("128")
    page.get_by_label("Width").fill("64")
    assert not page.console_errors, page.console_errors


def test_published_workflow_runs_from_a_form(web, admin_page, admin_headers):
    page = admin_page
    clear_queue(web, admin_headers)
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "demo-sd15.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
                                                   "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                                   "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "app", "images": ["8", 0]}},
    }
    r = httpx.post(f"{web.url}/api/v1/workflows", headers=admin_headers, json={
        "name": "Fox app", "description": "one prompt, one seed", "graph": graph, "inputs": [
            {"name": "prompt", "node": "6", "input": "text", "label": "Prompt", "type": "string"},
            {"name": "seed", "node": "3", "input": "seed", "label": "Seed", "type": "int", "min": 0}]})
    assert r.status_code == 201, r.text
    page.goto(f"{web.url}/")
    page.get_by_role("link", name="Workflows").click()
    expect(page.locator("body[data-ready=yes]")).to_have_count(1)
    expect(page.locator("#wf-title")).to_have_text("Fox app (version 1)")
    page.get_by_label("Prompt").fill("a blue heron")
    page.get_by_label("Seed").fill("1.5")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#wf-seed-error")).to_contain_text("whole number")
    page.get_by_label("Seed").fill("99")
    page.get_by_role("button", name="Run").click()
    card = page.locator("article.job").first
    expect(card.locator(".prompt")).to_have_text("Fox app v1")
    job_id = card.get_attribute("data-job-id")
    runtime = web.server.runtime
    principal = runtime.services.auth.authenticate(admin_headers["Authorization"].split()[1])
    graph_run = runtime.services.inference.get(principal, job_id).spec.graph
    assert graph_run["6"]["inputs"]["text"] == "a blue heron" and graph_run["3"]["inputs"]["seed"] == 99
    ScriptedWorker(web, "app").run_next()
    expect(card).to_have_attribute("data-status", "succeeded")
    card.locator("[data-role=open]").click()
    expect(page.locator("#viewer")).to_be_visible()
    screenshot(page, "web-workflow-run")
    page.keyboard.press("Escape")
    expect(page.get_by_role("link", name="ComfyUI", exact=True)).to_have_attribute("href", "/comfy/")
