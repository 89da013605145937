"""End to end: an endpoint's `preload` is downloaded and loaded by its replica before any job; workers report
memory; a worker downloads only models its jobs or its endpoint's preload reference."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from sdfleet.jobs.records import JobStatus
from sdfleet.store.jobs import SqlJobQueue
from tests.fixtures.live import start_fleet
from tests.integration.endpoints.test_autoscaling_e2e import endpoint, until, worker_pids

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def live(tmp_path, demo_files):
    fleet = start_fleet(tmp_path, demo_files, lease_seconds=4.0)
    yield fleet
    fleet.server.stop()
    fleet.server.thread.join(timeout=60)
    fleet.server.runtime.database.dispose()


def test_replica_loads_preloaded_checkpoint_before_any_job_and_reports_memory(live, demo_files):
    admin = live.login()
    sha = hashlib.sha256(demo_files["demo-sd15"].read_bytes()).hexdigest()
    started = time.monotonic()
    r = httpx.post(f"{live.url}/api/v1/endpoints", headers=admin, json={
        "name": "warm", "devices": ["cpu"], "min_replicas": 1, "max_replicas": 1, "idle_seconds": 300,
        "preload": [sha]})
    assert r.status_code == 201, r.text

    def loaded() -> dict | None:
        replicas = endpoint(live, admin, "warm")["replicas"]
        return next((x for x in replicas if sha in x["loaded_models"] and x["status"] == "idle"), None)

    replica = until(loaded, timeout=180, what="the replica to report the preloaded checkpoint")
    print(f"replica up with the checkpoint loaded after {time.monotonic() - started:.1f} s")
    queue = SqlJobQueue(live.server.runtime.database)
    assert queue.count(statuses=tuple(JobStatus)) == 0  # loaded before (and without) any job
    memory = replica["memory"]
    assert memory["ram_total"] > memory["ram_free"] > 0 and memory["vram_total"] == 0, memory

    a1111 = httpx.get(f"{live.url}/sdapi/v1/memory", headers=admin).json()
    warm = [w for w in a1111["workers"] if w["endpoint"] == "warm"]
    assert warm and warm[0]["loaded_models"] == 1 and warm[0]["memory"]["ram_total"] == memory["ram_total"]
    assert a1111["cuda"]["system"]["total"] == 0  # CPU workers have no VRAM

    # Downloads: the endpoint's own worker may fetch its preload; a worker of another endpoint may not.
    workers = live.server.runtime.services.workers
    mine = {"Authorization": f"Bearer {workers.register(name='extra', endpoint='warm').token}"}
    other = {"Authorization": f"Bearer {workers.register(name='stranger', endpoint='default').token}"}
    assignment = httpx.get(f"{live.url}/api/v1/worker/assignment", headers=mine).json()
    assert assignment["endpoint"] == "warm"
    assert [(m["sha256"], m["folder"], m["name"]) for m in assignment["preload"]] == [
        (sha, "checkpoints", "demo-sd15.safetensors")]
    assert httpx.get(f"{live.url}/api/v1/worker/assignment", headers=other).json()["preload"] == []
    r = httpx.get(f"{live.url}/api/v1/worker/models/{sha}", headers={**mine, "Range": "bytes=0-15"})
    assert r.status_code == 206 and r.content == demo_files["demo-sd15"].read_bytes()[:16]
    r = httpx.get(f"{live.url}/api/v1/worker/models/{sha}", headers=other)
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "not_found"

    # Deleting the endpoint stops its replica (the fixture's server stop would too).
    assert httpx.delete(f"{live.url}/api/v1/endpoints/warm", headers=admin).status_code in (200, 202)
    until(lambda: not worker_pids("replica:warm:0", live.url), timeout=60, what="the replica to exit")
