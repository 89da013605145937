"""`launcher: "ray"` endpoints on a real local Ray cluster (conftest: a head and a node with a custom resource):
replicas are named detached actors running real `sdfleet worker` loops that run real jobs."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from sqlalchemy import select

from sdfleet.store.jobs import SqlJobQueue
from sdfleet.store.tables import WorkerRow
from tests.fixtures.live import start_fleet
from tests.fixtures.serve import start_serve
from tests.integration.endpoints.test_autoscaling_e2e import SMALL, endpoint, scale_targets, submit, until
from tests.integration.ray.conftest import CUSTOM, kill_namespace, named_actors

pytestmark = pytest.mark.timeout(420)


@pytest.fixture
def ray_live(tmp_path, demo_files, ray_cluster):
    namespace = f"sdfleet-test-{uuid.uuid4().hex[:8]}"
    fleet = start_fleet(tmp_path, demo_files, lease_seconds=4.0, ray_address=ray_cluster.address,
                        ray_namespace=namespace, ray_pending_seconds=2.0)
    yield fleet, namespace
    fleet.server.stop()
    kill_namespace(namespace)
    fleet.server.runtime.database.dispose()


def create(live, headers, **body) -> None:
    r = httpx.post(f"{live.url}/api/v1/endpoints", headers=headers, json={"launcher": "ray", "devices": ["cpu"],
                                                                           **body})
    assert r.status_code == 201, r.text


def events(url, headers, name) -> list[dict]:
    return httpx.get(f"{url}/api/v1/endpoints/{name}/events", headers=headers, params={"limit": 500}).json()["items"]


def unrevoked(database, endpoint_name: str) -> list[str]:
    with database.session() as s:
        return [row.name for row in s.scalars(select(WorkerRow).where(WorkerRow.endpoint == endpoint_name))
                if row.revoked_at is None]


def actor_ids(namespace: str) -> dict[str, str]:
    return {name: handle._actor_id.hex() for name, handle in named_actors(namespace).items()}


def test_ray_endpoint_scales_zero_two_zero_with_real_jobs(ray_live):
    live, namespace = ray_live
    admin = live.login()
    create(live, admin, name="rayp", min_replicas=0, max_replicas=2, target_queue_per_replica=1, idle_seconds=2,
           resources={"num_cpus": 1})
    until(lambda: endpoint(live, admin, "rayp")["status"] == "ready", timeout=60, what="ready at zero")
    assert named_actors(namespace) == {}

    # 0 → 2: a burst of real jobs; each replica is an actor named after it in this install's namespace.
    burst = [submit(live, admin, {**SMALL, "seed": i, "width": 128, "height": 128, "steps": 8}, endpoint="rayp")
             for i in range(6)]
    until(lambda: len(named_actors(namespace)) == 2, timeout=120, what="two replica actors")
    assert set(named_actors(namespace)) == {"replica:rayp:0", "replica:rayp:1"}
    for job_id in burst:
        assert live.wait(admin, job_id, timeout=300)["status"] == "succeeded"
    assert 2 in scale_targets(live, admin, "rayp")
    # On the server's host its local object store's model blobs are hard-linked into the replicas' caches.
    runtime = live.server.runtime
    cached = [f for cache in (runtime.settings.data_dir / "worker-cache").glob("rayp-*") for f in cache.iterdir()
              if f.is_file() and len(f.name) == 64]
    assert cached
    for f in cached:
        assert f.stat().st_ino == (runtime.objects.root / "models" / f.name).stat().st_ino, f

    # → 0: every actor drains and is killed; the replicas' worker tokens are revoked.
    until(lambda: scale_targets(live, admin, "rayp")[-1] == 0, timeout=120, what="scale to zero")
    until(lambda: named_actors(namespace) == {}, timeout=120, what="no replica actor left")
    until(lambda: endpoint(live, admin, "rayp")["replicas"] == [], timeout=60, what="replicas gone")
    assert unrevoked(live.server.runtime.database, "rayp") == []
    types = {e["type"] for e in events(live.url, admin, "rayp")}
    assert {"replica_started", "replica_draining", "replica_stopped"} <= types


def test_custom_resources_place_replicas_and_a_pending_replica_is_an_event(ray_live, ray_cluster):
    import ray

    live, namespace = ray_live
    admin = live.login()
    create(live, admin, name="t4", min_replicas=2, max_replicas=2, idle_seconds=600,
           resources={"num_cpus": 0.5, CUSTOM: 1})
    create(live, admin, name="h100", min_replicas=1, max_replicas=1, idle_seconds=600,
           resources={"num_cpus": 0.5, "accelerator_type:H100": 1})
    until(lambda: endpoint(live, admin, "t4")["status"] == "ready", timeout=180, what="two ready T4 replicas")

    # Both land on the node that has the resource (the head has none).
    t4 = {n: h for n, h in named_actors(namespace).items() if n.startswith("replica:t4:")}
    assert len(t4) == 2
    nodes = {ray.get(h.status.remote(), timeout=30)["node"] for h in t4.values()}
    assert nodes == {ray_cluster.custom_node_id}

    # No node has an H100: the replica waits for resources (`starting`), and past the timeout says so.
    pending = until(lambda: [e for e in events(live.url, admin, "h100") if e["type"] == "replica_pending"],
                    timeout=60, what="a replica_pending event")
    assert pending[0]["data"]["replica"] == "replica:h100:0"
    assert pending[0]["data"]["resources"] == {"num_cpus": 0.5, "accelerator_type:H100": 1.0}
    assert [r["status"] for r in endpoint(live, admin, "h100")["replicas"]] in ([], ["starting"])
    assert endpoint(live, admin, "h100")["status"] == "creating"

    # Deleting the endpoints kills every actor (placed or pending) and revokes their tokens.
    for name in ("t4", "h100"):
        assert httpx.delete(f"{live.url}/api/v1/endpoints/{name}", headers=admin).status_code == 202
    until(lambda: named_actors(namespace) == {}, timeout=120, what="no actor left after delete")
    until(lambda: all(endpoint(live, admin, n)["status"] == "deleted" for n in ("t4", "h100")), timeout=60,
          what="endpoints deleted")
    database = live.server.runtime.database
    assert unrevoked(database, "t4") == [] and unrevoked(database, "h100") == []


def test_killed_replica_actor_is_replaced_and_its_job_finishes_once(ray_live):
    import ray

    live, namespace = ray_live
    admin = live.login()
    create(live, admin, name="crashy", min_replicas=1, max_replicas=1, idle_seconds=600, resources={"num_cpus": 1})
    until(lambda: endpoint(live, admin, "crashy")["status"] == "ready", timeout=180, what="a ready replica")
    job_id = submit(live, admin, {**SMALL, "width": 128, "height": 128, "steps": 50}, endpoint="crashy")
    until(lambda: httpx.get(f"{live.url}/api/v1/inferences/{job_id}", headers=admin).json()["progress"]["value"] >= 1,
          timeout=180, what="the job to be sampling", step=0.05)
    before = actor_ids(namespace)
    ray.kill(named_actors(namespace)["replica:crashy:0"], no_restart=True)

    job = live.wait(admin, job_id, timeout=300)
    assert job["status"] == "succeeded" and job["attempts"] == 2, job
    assert len(job["outputs"]) == 1
    kinds = [e.type.value for e in SqlJobQueue(live.server.runtime.database).events_after(job_id, 0)]
    assert kinds.count("started") == 2 and kinds.count("requeued") == 1, kinds
    assert kinds.count("succeeded") == 1 and kinds[-1] == "succeeded", kinds
    replaced = [e for e in events(live.url, admin, "crashy") if e["type"] == "replica_restarted"]
    assert replaced and replaced[0]["data"]["replica"] == "replica:crashy:0"
    after = actor_ids(namespace)
    assert set(after) == {"replica:crashy:0"} and after != before


def test_server_kill_9_and_restart_reattaches_to_the_same_actors(tmp_path, ray_cluster):
    namespace = f"sdfleet-test-{uuid.uuid4().hex[:8]}"
    env = {"SDFLEET_RAY_ADDRESS": ray_cluster.address, "SDFLEET_RAY_NAMESPACE": namespace}
    server = start_serve(tmp_path, env=env)
    port = int(server.url.rsplit(":", 1)[1])
    try:
        headers = {"Authorization": f"Bearer {server.token()}"}
        r = httpx.post(f"{server.url}/api/v1/endpoints", headers=headers, json={
            "name": "sticky", "launcher": "ray", "devices": ["cpu"], "min_replicas": 2, "max_replicas": 2,
            "idle_seconds": 600, "resources": {"num_cpus": 0.5}})
        assert r.status_code == 201, r.text
        until(lambda: httpx.get(f"{server.url}/api/v1/endpoints/sticky", headers=headers).json()["status"] == "ready",
              timeout=180, what="two ready replicas")
        before = actor_ids(namespace)
        assert set(before) == {"replica:sticky:0", "replica:sticky:1"}

        server.kill()  # kill -9: no clean-up runs
        restarted = time.time()
        server = start_serve(tmp_path, env=env, port=port)
        headers = {"Authorization": f"Bearer {server.token()}"}

        def reporting_again() -> bool:
            replicas = httpx.get(f"{server.url}/api/v1/endpoints/sticky", headers=headers).json()["replicas"]
            return len(replicas) == 2 and all(
                r["last_seen_at"] and _epoch(r["last_seen_at"]) > restarted and r["status"] in ("idle", "busy")
                for r in replicas)

        # The same actors, their workers still holding valid tokens, and no duplicate started.
        until(reporting_again, timeout=180, what="the replicas to report to the restarted server")
        assert actor_ids(namespace) == before
        started = [e for e in events(server.url, headers, "sticky") if e["type"] == "replica_started"]
        assert len(started) == 2, started

        assert httpx.delete(f"{server.url}/api/v1/endpoints/sticky", headers=headers).status_code == 202
        until(lambda: named_actors(namespace) == {}, timeout=120, what="no actor left after delete")
    finally:
        server.kill()
        kill_namespace(namespace)


def _epoch(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
