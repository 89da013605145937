"""A worker that speaks the real worker protocol over HTTP but makes its images with PIL instead of the
engine: it puts jobs into any state (running with progress and a preview, succeeded with outputs, cancelled)
in milliseconds, so browser tests set up state without torch."""

from __future__ import annotations

import base64
import io

import httpx
from PIL import Image, ImageDraw, PngImagePlugin

from tests.fixtures.live import Fleet


def output_png(width: int, height: int, *, seed: int = 0, text: str = "") -> bytes:
    """A PNG with a colour from `seed` and a diagonal, carrying `text` as its A1111 `parameters` chunk."""
    image = Image.new("RGB", (width, height), ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))
    ImageDraw.Draw(image).line((0, 0, width, height), fill=(255, 255, 255), width=max(1, width // 16))
    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("parameters", text)
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


class ScriptedWorker:
    """Claims the next queued job of the `default` endpoint and finishes it the way a test says."""

    def __init__(self, fleet: Fleet, name: str = "scripted") -> None:
        issued = fleet.server.runtime.services.workers.register(name=name, endpoint="default")
        self.http = httpx.Client(base_url=f"{fleet.url}/api/v1/worker", timeout=30,
                                 headers={"Authorization": f"Bearer {issued.token}"})

    def claim(self) -> dict:
        r = self.http.post("/claim", json={"wait_seconds": 0})
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def progress(self, job: dict, value: int, maximum: int, *, preview: bytes | None = None) -> dict:
        body = {"fencing_token": job["fencing_token"], "value": value, "max": maximum, "node_id": "sample0"}
        if preview is not None:
            body["preview_png_base64"] = base64.b64encode(preview).decode()
        r = self.http.post(f"/jobs/{job['id']}/heartbeat", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    def succeed(self, job: dict, images: list[bytes]) -> None:
        for index, png in enumerate(images):
            r = self.http.put(f"/jobs/{job['id']}/outputs/{index}", params={"fencing_token": job["fencing_token"]},
                              content=png)
            assert r.status_code == 204, r.text
        r = self.http.post(f"/jobs/{job['id']}/complete", json={
            "fencing_token": job["fencing_token"], "outputs": [{"index": i, "node_id": "save0"} for i in range(len(images))]})
        assert r.status_code == 204, r.text

    def cancelled(self, job: dict) -> None:
        r = self.http.post(f"/jobs/{job['id']}/cancelled", json={"fencing_token": job["fencing_token"]})
        assert r.status_code == 204, r.text

    def run_next(self, *, size: tuple[int, int] = (64, 64), count: int = 1, text: str = "") -> str:
        """Claim the next job and succeed it with `count` images; returns its id."""
        job = self.claim()
        self.succeed(job, [output_png(*size, seed=i + 1, text=text) for i in range(count)])
        return job["id"]
