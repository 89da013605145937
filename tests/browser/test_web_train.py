"""The Train page in a real Chromium: a dataset made and captioned in the page, a training started from the form
and run by a real worker (live loss curve, samples, grid), its LoRA tried in Generate; hidden without train:all."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.web_session import sign_in
from tests.fixtures.browser import screenshot
from tests.integration.trainings.training_fleet import allow_training, noisy_pngs

pytestmark = pytest.mark.timeout(400)


def test_train_page_from_dataset_to_lora(fleet, page, tmp_path):
    admin = fleet.login()
    allow_training(fleet.url, admin)
    files = []
    for i, data in enumerate(noisy_pngs(3)):
        path = tmp_path / f"cat-{i}.png"
        path.write_bytes(data)
        files.append(str(path))
    fleet.start_worker("t")
    sign_in(page, fleet.url, path="/train")
    # 1. A dataset: created, images uploaded (thumbnails), a caption edited in place.
    page.get_by_label("New dataset").fill("cats")
    page.get_by_label("Dataset resolution").fill("64")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#dataset-summary")).to_contain_text("0 images")
    page.set_input_files("#images-file", files)
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#dataset-images img")).to_have_count(3)
    expect(page.locator("#dataset-summary")).to_contain_text("3 images")
    caption = page.get_by_label("Caption of cat-0.png")
    caption.fill("a photo of sks cat")
    caption.press("Enter")
    caption.blur()
    dataset = httpx.get(f"{fleet.url}/api/v1/datasets", headers=admin).json()["items"][0]
    page.wait_for_function("""id => fetch(`/api/v1/datasets/${id}/images`).then(r => r.json())
        .then(p => p.items.some(i => i.caption === 'a photo of sks cat'))""", arg=dataset["id"])
    # 2. A bad field is named under its input; then a good training starts.
    page.get_by_label("LoRA name").fill("web-sks")
    page.get_by_label("Base model").select_option("demo-sd15.safetensors")
    page.get_by_label("Steps", exact=True).fill("4")
    page.get_by_label("Rank", exact=True).fill("0")
    page.get_by_role("button", name="Start training").click()
    expect(page.locator("#t-rank-error")).to_contain_text("network_rank must be 1-256")
    expect(page.locator("#t-rank")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Rank", exact=True).fill("4")
    page.get_by_label("UNet learning rate").fill("0.05")
    page.get_by_label("Checkpoint every (steps)").fill("2")
    page.get_by_label("Sample every (steps)").fill("2")
    page.get_by_label("Sample prompts").fill("a photo of sks cat")
    page.get_by_role("button", name="Start training").click()
    # 3. It runs: the loss curve fills, samples and the grid appear, the LoRA links to Generate.
    expect(page.locator("#trainings tr")).to_have_count(1)
    expect(page.locator("#run-status")).to_contain_text("succeeded", timeout=240_000)
    expect(page.locator("#loss-curve")).to_have_attribute("data-points", "4")
    expect(page.locator("#run-samples img")).to_have_count(2)
    expect(page.locator("#grid-image")).to_be_visible()
    expect(page.locator("#trainings tr").first).to_contain_text("succeeded")
    screenshot(page, "web-train")
    try_it = page.get_by_role("link", name="Try it in Generate")
    expect(try_it).to_be_visible()
    try_it.click()
    page.wait_for_url(f"{fleet.url}/")
    expect(page.locator("#prompt")).to_have_value("<lora:web-sks:1> a photo of sks cat")
    # The browser logs the refused submission (422) it was asked to make; nothing else went wrong.
    assert [e for e in page.console_errors if "status of 422" not in e] == [], page.console_errors


def test_train_page_is_hidden_without_train_all(fleet, page):
    admin = fleet.login()
    r = httpx.post(f"{fleet.url}/api/v1/users", headers=admin,
                   json={"username": "artist1", "password": "artist-password-1", "roles": ["artist"]})
    assert r.status_code == 201, r.text
    sign_in(page, fleet.url, username="artist1", password="artist-password-1")
    expect(page.get_by_role("navigation", name="Main")).not_to_contain_text("Train")
    response = page.goto(f"{fleet.url}/train")
    assert response.status == 403
    expect(page.locator("main")).to_contain_text("train:all")
