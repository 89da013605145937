"""The models page in a real Chromium: an upload interrupted by a reload resumes with only the missing parts."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from safetensors.torch import load_file, save_file

from tests.browser.web_session import sign_in
from tests.fixtures.browser import screenshot
from tests.fixtures.live import start_fleet

pytestmark = pytest.mark.timeout(180)
MiB = 1024 * 1024


@pytest.fixture
def small_part_fleet(tmp_path, demo_files):
    fleet = start_fleet(tmp_path, demo_files, upload_part_size=5 * MiB)
    yield fleet
    fleet.server.stop()
    fleet.server.runtime.database.dispose()


def test_upload_resumes_after_a_reload(small_part_fleet, page, tmp_path, demo_files):
    fleet = small_part_fleet
    model = tmp_path / "web-upload.safetensors"
    save_file(load_file(demo_files["demo-sdxl"]), model, metadata={"sdfleet.test": "web upload"})
    assert model.stat().st_size > 5 * MiB, "needs at least two parts"

    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url.rsplit("/parts/", 1)[1]) if "/parts/" in r.url else None)
    page.route("**/parts/2", lambda route: route.abort())  # the connection drops after part 1
    sign_in(page, fleet.url, path="/models")
    expect(page.locator("#models")).to_contain_text("demo-sd15")
    page.set_input_files("#upload-file", str(model))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status")).to_contain_text("Stopped", timeout=60_000)
    assert sent == ["1", "2"]

    page.unroute("**/parts/2")
    page.reload()
    expect(page.locator("#upload-resume")).to_contain_text("web-upload.safetensors")
    screenshot(page, "web-models-resume")
    sent.clear()
    page.set_input_files("#upload-file", str(model))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status")).to_contain_text("Registered web-upload.safetensors", timeout=60_000)
    assert "1" not in sent and "2" in sent, sent
    expect(page.locator("#models")).to_contain_text("web-upload.safetensors")
    expect(page.locator("#upload-progress [role=progressbar]")).to_have_attribute("aria-valuenow", "100")
    screenshot(page, "web-models")

    page.get_by_label("Type").first.select_option("Stable-diffusion")
    page.locator("#filter-type").select_option("Lora")
    expect(page.locator("#models")).to_contain_text("demo-lora")
    expect(page.locator("#models")).not_to_contain_text("web-upload")
