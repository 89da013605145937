"""Helpers of the training tests: a dataset of noisy images, an endpoint whose workers may train, polling."""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
from PIL import Image

from tests.integration.datasets.images import zip_of

BASE = "/api/v1/trainings"
#: small and fast on the CPU; the learning rate is high so that a few steps change the image
TINY = {"network_rank": 4, "network_alpha": 4.0, "unet_lr": 0.05, "max_train_steps": 6, "save_every_n_steps": 2,
        "train_batch_size": 1, "seed": 7}


def noisy_pngs(count: int = 3, *, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        width = 64 if i % 2 == 0 else 96
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (64, width, 3), dtype=np.uint8)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def make_dataset(url: str, headers: dict, *, name: str = "sks", resolution: int = 64) -> dict:
    """A dataset with three captioned images (a zip with .txt sidecars)."""
    r = httpx.post(f"{url}/api/v1/datasets", headers=headers, json={"name": name, "resolution": resolution})
    assert r.status_code == 201, r.text
    dataset = r.json()
    files = {}
    for i, data in enumerate(noisy_pngs()):
        files[f"{i}.png"] = data
        files[f"{i}.txt"] = f"a photo of sks thing, number {i}"
    r = httpx.post(f"{url}/api/v1/datasets/{dataset['id']}/images", headers=headers,
                   files={"file": ("set.zip", zip_of(files))})
    assert r.status_code == 201, r.text
    return r.json()["dataset"]


def allow_training(url: str, admin: dict, endpoint: str = "default") -> None:
    r = httpx.patch(f"{url}/api/v1/endpoints/{endpoint}", headers=admin, json={"kinds": ["inference", "train"]})
    assert r.status_code == 200, r.text


def wait_training(url: str, headers: dict, job_id: str, *, until=("succeeded", "failed", "cancelled"),
                  timeout: float = 240, logs=None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}{BASE}/{job_id}", headers=headers).json()
        if job["status"] in until:
            return job
        time.sleep(0.1)
    raise AssertionError(f"training {job_id} still {job['status']} after {timeout} s\n{logs() if logs else ''}")


def wait_step(url: str, headers: dict, job_id: str, step: int, *, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}{BASE}/{job_id}", headers=headers).json()
        if job["progress"]["step"] >= step or job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"training {job_id} did not reach step {step} in {timeout} s")


def events(url: str, headers: dict, job_id: str) -> list[tuple[str, dict]]:
    """Every SSE event of a finished training, as (type, data)."""
    found = []
    with httpx.stream("GET", f"{url}{BASE}/{job_id}/events", headers=headers, timeout=30) as r:
        kind = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                import json

                found.append((kind, json.loads(line[6:])))
    return found
