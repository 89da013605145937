"""sdfleet's own ComfyUI templates: an SD 1.x and an SDXL txt2img for the caller's models, and published workflows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sdfleet.domain.accounts import Principal
from sdfleet.domain.errors import Forbidden
from sdfleet.domain.pagination import MAX_LIMIT, PageRequest
from sdfleet.domain.permissions import Permission
from sdfleet.services.authorization import authorize
from sdfleet.services.checkpoints import CheckpointQuery


@dataclass(frozen=True)
class Template:
    """A graph the frontend can open: `graph` in API format, `ui_graph` when a publisher saved one."""

    name: str
    title: str
    description: str
    graph: dict[str, Any]
    ui_graph: dict[str, Any] | None = None
    workflow: str | None = None


def txt2img_graph(checkpoint: str, *, size: int, steps: int, prompt: str) -> dict[str, Any]:
    """The classic checkpoint → encode → KSampler → decode → save graph."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint},
              "_meta": {"title": "Load Checkpoint"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["4", 1]},
              "_meta": {"title": "Positive prompt"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, low quality", "clip": ["4", 1]},
              "_meta": {"title": "Negative prompt"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1},
              "_meta": {"title": "Empty Latent Image"}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 1, "steps": steps, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]},
            "_meta": {"title": "KSampler"}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]},
              "_meta": {"title": "VAE Decode"}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "sdfleet", "images": ["8", 0]},
              "_meta": {"title": "Save Image"}},
    }


def _sizes(checkpoint: str, size: int, steps: int) -> dict[str, int]:
    # sdfleet's demo models are tiny random networks: a small image keeps the first run instant.
    return {"size": 64, "steps": 4} if checkpoint.startswith("demo-") else {"size": size, "steps": steps}


class ComfyTemplates:
    """Templates for the caller: txt2img per model family they can use, then published workflows."""

    def __init__(self, *, checkpoints, workflows) -> None:
        self._checkpoints = checkpoints
        self._workflows = workflows

    def _checkpoint_for(self, principal: Principal, architecture: str) -> str | None:
        query = CheckpointQuery(model_type="Stable-diffusion", status="active", architecture=architecture)
        found = self._checkpoints.list(principal, query, PageRequest(limit=MAX_LIMIT)).items
        return sorted((c.name for c in found), key=str.lower)[0] if found else None

    def list(self, principal: Principal) -> list[Template]:
        """What the frontend offers on first open and in sdfleet's menu."""
        authorize(principal, Permission.INFERENCE_ALL)
        templates = []
        sd1 = self._checkpoint_for(principal, "sd1")
        if sd1:
            templates.append(Template(name="sdfleet-sd1-txt2img", title=f"SD 1.x txt2img ({sd1})",
                                      description="Text to image with a Stable Diffusion 1.x checkpoint.",
                                      graph=txt2img_graph(sd1, prompt="a lighthouse at dusk", **_sizes(sd1, 512, 20))))
        sdxl = self._checkpoint_for(principal, "sdxl")
        if sdxl:
            templates.append(Template(name="sdfleet-sdxl-txt2img", title=f"SDXL txt2img ({sdxl})",
                                      description="Text to image with an SDXL base checkpoint.",
                                      graph=txt2img_graph(sdxl, prompt="a lighthouse at dusk", **_sizes(sdxl, 1024, 25))))
        if self._workflows is not None:
            try:
                published = self._workflows.list(principal)
            except Forbidden:
                published = []
            for version in published:
                templates.append(Template(name=f"workflow-{version.name}", title=f"{version.name} (v{version.version})",
                                          description=version.description, graph=version.graph,
                                          ui_graph=version.ui_graph, workflow=version.name))
        return templates
