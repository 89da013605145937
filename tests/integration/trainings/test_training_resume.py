"""Resumable trainings with real worker processes: `kill -9` a worker mid-training → the next attempt resumes from
the last checkpoint (total steps run ≤ steps + save_every_n_steps) and its LoRA equals an uninterrupted run's;
cancel stops at the next step and keeps the last checkpoint (and the LoRA so far) as downloadable artifacts."""

from __future__ import annotations

import json

import httpx
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from sdfleet.cli import app
from sdfleet.engine.training.state import read_state
from tests.integration.trainings.training_fleet import (
    BASE,
    TINY,
    allow_training,
    events,
    make_dataset,
    wait_step,
    wait_training,
)

STEPS, EVERY = 20, 4


def _logs(fleet):
    return lambda: "\n".join(p.read_text()[-4000:] for p in fleet.tmp.glob("worker-*.log"))


def _submit(fleet, headers, dataset_id: str, name: str, **changes) -> str:
    body = {**TINY, "name": name, "base_model": "demo-sd15.safetensors", "dataset_id": dataset_id,
            "max_train_steps": STEPS, "save_every_n_steps": EVERY, "random_flip": True, "train_text_encoder": True,
            **changes}
    r = httpx.post(f"{fleet.url}{BASE}", headers=headers, json=body)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def _weights(fleet, headers, job_id: str) -> dict[str, torch.Tensor]:
    data = httpx.get(f"{fleet.url}{BASE}/{job_id}/artifacts/lora.safetensors", headers=headers).content
    path = fleet.tmp / f"{job_id}.safetensors"
    path.write_bytes(data)
    return load_file(str(path))


def test_kill_9_mid_training_resumes_from_the_last_checkpoint_and_cancel_keeps_it(fleet):
    admin = fleet.login()
    allow_training(fleet.url, admin)
    dataset = make_dataset(fleet.url, admin)
    # 1. A worker trains; kill -9 it once a checkpoint is stored and it is past it.
    killed = _submit(fleet, admin, dataset["id"], "resumed")
    first = fleet.start_worker("first")
    job = wait_step(fleet.url, admin, killed, EVERY + 2)
    assert job["status"] == "running" and job["progress"]["step"] < STEPS, job
    first.kill()
    first.wait()
    # 2. Another worker takes the job after its lease expires, and resumes.
    fleet.start_worker("second")
    job = wait_training(fleet.url, admin, killed, logs=_logs(fleet))
    assert job["status"] == "succeeded" and job["attempts"] == 2, (job, _logs(fleet)())
    seen = events(fleet.url, admin, killed)
    requeued = next(i for i, (t, _) in enumerate(seen) if t == "requeued")
    resumed_from = job["info"]["resumed_from_step"]
    assert resumed_from >= EVERY and resumed_from % EVERY == 0, job["info"]
    # Steps the killed attempt ran: at least what it reported, and at least up to the checkpoint it stored.
    ran_before_kill = max([resumed_from] + [d["value"] for t, d in seen[:requeued] if t == "progress"])
    assert job["info"]["steps_run"] == STEPS - resumed_from
    assert ran_before_kill + job["info"]["steps_run"] <= STEPS + EVERY
    # 3. The same training uninterrupted gives the same LoRA.
    straight = _submit(fleet, admin, dataset["id"], "straight")
    job = wait_training(fleet.url, admin, straight, logs=_logs(fleet))
    assert job["status"] == "succeeded" and job["info"]["resumed_from_step"] == 0, job
    a, b = _weights(fleet, admin, killed), _weights(fleet, admin, straight)
    assert a.keys() == b.keys() and len(a) > 0
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) <= 1e-3
    # 4. Cancel: stops at the next step, keeps the checkpoint and the LoRA so far; nothing is registered.
    cancelled = _submit(fleet, admin, dataset["id"], "cancelled", max_train_steps=100_000, seed=8)
    job = wait_step(fleet.url, admin, cancelled, 3)
    r = httpx.post(f"{fleet.url}{BASE}/{cancelled}/cancel", headers=admin)
    assert r.status_code == 200 and r.json()["cancel_requested"] is True
    job = wait_training(fleet.url, admin, cancelled, logs=_logs(fleet))
    assert job["status"] == "cancelled" and job["lora"] is None, job
    artifacts = {a["name"]: a for a in httpx.get(f"{fleet.url}{BASE}/{cancelled}/artifacts", headers=admin).json()}
    checkpoint = next(a for name, a in artifacts.items() if name.startswith("checkpoints/"))
    assert checkpoint["step"] >= 3 and "lora.safetensors" in artifacts
    download = httpx.get(f"{fleet.url}{checkpoint['url']}", headers=admin)
    assert download.status_code == 200 and len(download.content) == checkpoint["size"] > 0
    # `sdfleet train download --artifact checkpoint` saves it: a training checkpoint at that step.
    token, out = admin["Authorization"].removeprefix("Bearer "), fleet.tmp / "last.pt"
    result = CliRunner().invoke(app, ["train", "download", cancelled, "--artifact", "checkpoint", "--out", str(out),
                                      "--server", fleet.url, "--token", token])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == download.content and read_state(out.read_bytes()).step == checkpoint["step"]
    result = CliRunner().invoke(app, ["train", "show", cancelled, "--server", fleet.url, "--token", token])
    assert result.exit_code == 0 and json.loads(result.stdout)["status"] == "cancelled"
    other = _weights(fleet, admin, cancelled)  # another seed, fewer steps: the comparison above can fail
    assert max((a[k].float() - other[k].float()).abs().max().item() for k in a) > 1e-3
    names = [c["name"] for c in httpx.get(f"{fleet.url}/api/v1/checkpoints?type=Lora", headers=admin).json()["items"]]
    assert "resumed.safetensors" in names and "straight.safetensors" in names
    assert "cancelled.safetensors" not in names
