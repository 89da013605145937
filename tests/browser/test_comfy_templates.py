"""ComfyUI's own SD-family workflow templates (UI format, from the templates package the ComfyUI server ships)
opened in the official frontend, model names pointed at the demo models and sizes cut, run on a real worker:
every one gives its images with no error.

Templates of ComfyUI's package that are SD-family but out of scope: `sdxl_revision_text_prompts` (unCLIP:
no CLIP vision loader), `txt_to_image_to_video` (Stable Video Diffusion); the ESRGAN upscaler template belongs
to the upscale-model nodes."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from tests.browser.test_comfy_frontend import FIT_VIEW, HAS_CHECKPOINT_LOADER, watch
from tests.browser.web_session import sign_in
from tests.fixtures.browser import screenshot

pytestmark = pytest.mark.timeout(900)

#: ComfyUI's SD 1.x / 2.x / SDXL templates in comfyui-workflow-templates-json (those its index lists as such)
SD_TEMPLATES = ("image_sdxl_simple", "sdxl_simple_example", "sdxl_refiner_prompt_example", "sdxlturbo_example")
DEMO_SDXL = "demo-sdxl.safetensors"

# Cut sizes to 64 px and steps to 3 (keeping a two-stage split at step 2); a PrimitiveNode holds the value
# of the widget its output feeds.
SHRINK = """() => {
  for (const node of app.graph._nodes) {
    const widgets = node.type === 'PrimitiveNode' ? (node.widgets ?? []).slice(0, 1) : (node.widgets ?? []);
    for (const w of widgets) {
      const name = node.type === 'PrimitiveNode' ? node.outputs?.[0]?.widget?.name : w.name;
      if ((name === 'width' || name === 'height') && node.type === 'EmptyLatentImage') w.value = 64;
      else if (name === 'steps') w.value = Math.min(w.value, 3);
      else if (name === 'end_at_step' && w.value < 10000) w.value = 2;
      else if (name === 'start_at_step' && w.value > 0) w.value = 2;
    }
  }
  return app.graph._nodes.map((n) => n.type);
}"""
OUTPUTS_SHOWN = """() => {
  const saves = app.graph._nodes.filter((n) => n.type === 'SaveImage');
  return saves.length > 0 && saves.every((n) => n.imgs?.length && n.imgs.every((i) => i.complete && i.naturalWidth === 64));
}"""
ERROR_SHOWN = "() => !!document.querySelector('.comfy-error-report, [data-testid=\"error-dialog\"]')"


def _template(name: str) -> dict:
    """The template with its checkpoints (widget and model metadata) pointed at the demo SDXL model."""
    root = resources.files("comfyui_workflow_templates_json") / "templates"
    graph = json.loads((root / f"{name}.json").read_text())
    for node in graph["nodes"]:
        if node["type"] == "CheckpointLoaderSimple":
            node["widgets_values"][0] = DEMO_SDXL
            for model in node.get("properties", {}).get("models", []):
                model["name"] = DEMO_SDXL
    return graph


def test_every_sd_template_runs_from_the_frontend(fleet, page):
    fleet.start_worker("w")
    page.set_viewport_size({"width": 1920, "height": 1080})
    log = watch(page)
    sign_in(page, fleet.url, path="/comfy/")
    page.wait_for_function(HAS_CHECKPOINT_LOADER, timeout=60_000)
    known = set(page.evaluate(
        "() => window.comfyAPI.api.api.fetchApi('/object_info').then((r) => r.json()).then(Object.keys)"))

    for name in SD_TEMPLATES:
        graph = _template(name)
        server_nodes = {n["type"] for n in graph["nodes"]} - {"PrimitiveNode", "Note", "MarkdownNote", "Reroute"}
        assert server_nodes <= known, (name, server_nodes - known)
        page.evaluate("(g) => app.loadGraphData(g, true, true, 'template')", graph)
        assert page.evaluate("() => app.graph._nodes.length") == len(graph["nodes"]), name
        types = page.evaluate(SHRINK)
        assert "SaveImage" in types, (name, types)
        page.evaluate(FIT_VIEW)
        page.get_by_test_id("queue-button").click()
        page.wait_for_function(f"() => ({OUTPUTS_SHOWN})() || ({ERROR_SHOWN})()", timeout=300_000)
        screenshot(page, f"template-{name}")
        assert not page.evaluate(ERROR_SHOWN), name
        assert page.evaluate(OUTPUTS_SHOWN), name
        page.wait_for_function("() => !/\\[\\d+%\\]/.test(document.title)")  # the run is over

    assert "execution_error" not in log.received, log.received
    failed, console = log.route_errors()
    assert not failed and not console, (failed, console)
