"""End to end with the real local launcher and CPU worker subprocesses: scale 0 → 1 → 2 → 0 and back,
role-restricted endpoints, and a killed replica replaced with its job finishing once."""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from sdfleet.store.jobs import SqlJobQueue
from tests.fixtures.live import start_fleet

pytestmark = pytest.mark.timeout(300)
#: the in-process server shares the test's GIL and a busy 2-core box: answers get a minute, not httpx's 5 s
http = httpx.Client(timeout=60)
SMALL = {"prompt": "a red cube", "steps": 2, "width": 64, "height": 64, "seed": 1, "sampler_name": "Euler"}


@pytest.fixture
def live(tmp_path, demo_files):
    fleet = start_fleet(tmp_path, demo_files, lease_seconds=4.0)
    yield fleet
    fleet.server.stop()
    # uvicorn first waits for the workers' long-poll claims (up to 20 s), then the fleet manager stops every replica.
    fleet.server.thread.join(timeout=60)
    assert not worker_pids(fleet.url), "replicas outlived the server"
    fleet.server.runtime.database.dispose()


def until(check, *, timeout: float, what: str, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def endpoint(live, headers, name) -> dict:
    r = http.get(f"{live.url}/api/v1/endpoints/{name}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def scale_targets(live, headers, name) -> list[int]:
    events = http.get(f"{live.url}/api/v1/endpoints/{name}/events", headers=headers,
                       params={"limit": 500}).json()["items"]
    return [e["data"]["to"] for e in events if e["type"] == "scale"]


def submit(live, headers, params, **fields) -> str:
    r = http.post(f"{live.url}/api/v1/inferences", headers=headers,
                   json={"task": "txt2img", "params": params, **fields})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def worker_pids(name: str, server: str | None = None) -> list[int]:
    """Processes of this machine running `sdfleet worker` with `name` (a replica name or server URL) in argv."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in argv and name.encode() in argv and (server is None or server.encode() in argv):
            pids.append(int(proc.name))
    return pids


def test_role_endpoint_scales_zero_one_two_zero_and_back(live):
    admin = live.login()
    r = http.post(f"{live.url}/api/v1/roles", headers=admin, json={"name": "team", "permissions": ["inference:all"]})
    assert r.status_code == 201, r.text
    r = http.post(f"{live.url}/api/v1/users", headers=admin,
                   json={"username": "member", "password": "member-password", "roles": ["team"]})
    assert r.status_code == 201, r.text
    member = live.login("member", "member-password")
    r = http.post(f"{live.url}/api/v1/endpoints", headers=admin, json={
        "name": "team-pool", "devices": ["cpu"], "min_replicas": 0, "max_replicas": 2,
        "target_queue_per_replica": 1, "idle_seconds": 2, "allowed_roles": ["team"]})
    assert r.status_code == 201, r.text
    until(lambda: endpoint(live, admin, "team-pool")["status"] == "ready", timeout=60, what="ready at zero")
    assert endpoint(live, admin, "team-pool")["replicas"] == []

    # 0 → 1: the member's job (no endpoint named) is routed to the team's endpoint, which starts a replica.
    job_id = submit(live, member, SMALL)
    job = live.wait(member, job_id, timeout=120)
    assert job["status"] == "succeeded" and job["endpoint"] == "team-pool", job
    image = http.get(live.url + job["outputs"][0]["url"], headers=member)
    assert image.status_code == 200 and Image.open(io.BytesIO(image.content)).size == (64, 64)
    assert scale_targets(live, admin, "team-pool")[0] == 1

    # 1 → 2: a burst of work asks for a second replica (max 2).
    burst = [submit(live, member, {**SMALL, "seed": i, "width": 128, "height": 128, "steps": 8}) for i in range(6)]
    for job_id in burst:
        assert live.wait(member, job_id, timeout=180)["status"] == "succeeded"
    assert 2 in scale_targets(live, admin, "team-pool")

    # → 0 after idle_seconds with no work; every replica drains and is gone.
    until(lambda: scale_targets(live, admin, "team-pool")[-1] == 0, timeout=120, what="scale to zero")
    until(lambda: endpoint(live, admin, "team-pool")["replicas"] == [], timeout=60, what="replicas drained")
    until(lambda: not worker_pids("replica:team-pool:0", live.url) and not worker_pids("replica:team-pool:1", live.url),
          timeout=30, what="worker processes to exit")
    assert max(scale_targets(live, admin, "team-pool")) == 2

    # And back from zero when used again.
    job = live.wait(member, submit(live, member, SMALL), timeout=120)
    assert job["status"] == "succeeded"
    targets = scale_targets(live, admin, "team-pool")
    assert targets[-1] == 1 and targets[-2] == 0, targets
    types = {e["type"] for e in http.get(f"{live.url}/api/v1/endpoints/team-pool/events", headers=member,
                                          params={"limit": 500}).json()["items"]}
    assert {"scale", "replica_started", "replica_draining", "replica_stopped"} <= types


def test_killed_replica_is_replaced_and_its_job_finishes_once(live):
    admin = live.login()
    r = http.post(f"{live.url}/api/v1/endpoints", headers=admin, json={
        "name": "crashy", "devices": ["cpu"], "min_replicas": 1, "max_replicas": 1, "idle_seconds": 60})
    assert r.status_code == 201, r.text
    until(lambda: endpoint(live, admin, "crashy")["status"] == "ready", timeout=120, what="a ready replica")
    job_id = submit(live, admin, {**SMALL, "width": 128, "height": 128, "steps": 50}, endpoint="crashy")
    until(lambda: http.get(f"{live.url}/api/v1/inferences/{job_id}", headers=admin).json()["progress"]["value"] >= 1,
          timeout=120, what="the job to be sampling", step=0.05)
    pids = worker_pids("replica:crashy:0", live.url)
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)

    job = live.wait(admin, job_id, timeout=180)
    assert job["status"] == "succeeded" and job["attempts"] == 2, job
    assert len(job["outputs"]) == 1
    kinds = [e.type.value for e in SqlJobQueue(live.server.runtime.database).events_after(job_id, 0)]
    assert kinds.count("started") == 2 and kinds.count("requeued") == 1, kinds
    assert kinds.count("succeeded") == 1 and kinds[-1] == "succeeded", kinds
    replaced = [e for e in http.get(f"{live.url}/api/v1/endpoints/crashy/events", headers=admin).json()["items"]
                if e["type"] == "replica_restarted"]
    assert replaced and replaced[0]["data"]["replica"] == "replica:crashy:0"
    new_pids = worker_pids("replica:crashy:0", live.url)
    assert len(new_pids) == 1 and new_pids != pids
