"""Per-user quotas through the native and A1111 APIs: queued jobs (429 at submit), running jobs (claim)."""

from __future__ import annotations

import concurrent.futures
import json
import time

import httpx
from fastapi.testclient import TestClient

from sdfleet.bootstrap import build_app
from tests.fixtures.live import register_demo, start_fleet
from tests.fixtures.runtime import Api, make_runtime
from tests.integration.a1111.a1111_client import TXT2IMG, basic, new_key

TASK = {"task": "txt2img", "params": TXT2IMG}


def _worker(runtime, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {runtime.services.workers.register(name=name, endpoint='default').token}"}


def test_max_queued_per_user_is_429_on_both_apis(tmp_path, demo_files):
    runtime = make_runtime(tmp_path, max_queued_per_user=1)
    register_demo(runtime, demo_files)
    with TestClient(build_app(runtime, local_workers=0)) as client:
        api = Api(client=client, runtime=runtime)
        alice, bob = api.make_user(roles=["artist"]), api.make_user(roles=["artist"])
        assert client.post("/api/v1/inferences", headers=alice["headers"], json=TASK).status_code == 202
        r = client.post("/api/v1/inferences", headers=alice["headers"], json=TASK)
        assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"
        assert "1 queued jobs; the limit is 1" in r.json()["error"]["message"]
        # The A1111 call is refused at once instead of waiting.
        key = new_key(client, alice["headers"])
        r = client.post("/sdapi/v1/txt2img", headers=basic(alice["username"], key), json=TXT2IMG)
        assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"
        # The quota is per user.
        assert client.post("/api/v1/inferences", headers=bob["headers"], json=TASK).status_code == 202
    runtime.database.dispose()


def test_max_running_per_user_holds_back_the_native_users_second_job(tmp_path, demo_files):
    runtime = make_runtime(tmp_path, max_running_per_user=1)
    register_demo(runtime, demo_files)
    with TestClient(build_app(runtime, local_workers=0)) as client:
        api = Api(client=client, runtime=runtime)
        alice, bob = api.make_user(roles=["artist"])["headers"], api.make_user(roles=["artist"])["headers"]
        first = client.post("/api/v1/inferences", headers=alice, json=TASK).json()["id"]
        client.post("/api/v1/inferences", headers=alice, json=TASK)
        w1, w2 = _worker(runtime, "w1"), _worker(runtime, "w2")
        r = client.post("/api/v1/worker/claim", headers=w1, json={"wait_seconds": 0})
        assert r.status_code == 200 and r.json()["id"] == first
        assert client.post("/api/v1/worker/claim", headers=w2, json={"wait_seconds": 0}).status_code == 204
        theirs = client.post("/api/v1/inferences", headers=bob, json=TASK).json()["id"]
        r = client.post("/api/v1/worker/claim", headers=w2, json={"wait_seconds": 0})
        assert r.status_code == 200 and r.json()["id"] == theirs
    runtime.database.dispose()


def test_max_running_per_user_through_a1111_calls(tmp_path, demo_files):
    """Two A1111 calls of one user: the second job runs only once the first finished."""
    fleet = start_fleet(tmp_path, demo_files, max_running_per_user=1)
    try:
        admin = fleet.login()
        key = httpx.post(f"{fleet.url}/api/v1/api-keys", headers=admin, json={"name": "k"}).json()["key"]
        headers = basic("admin", key)
        runtime = fleet.server.runtime
        w1, w2 = _worker(runtime, "w1"), _worker(runtime, "w2")
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            calls = [pool.submit(httpx.post, f"{fleet.url}/sdapi/v1/txt2img", json=TXT2IMG, headers=headers,
                                 timeout=60) for _ in range(2)]
            deadline = time.monotonic() + 20
            while len(httpx.get(f"{fleet.url}/api/v1/inferences?status=queued", headers=admin).json()["items"]) < 2:
                assert time.monotonic() < deadline, "the two A1111 calls did not queue"
                time.sleep(0.05)
            claim = httpx.post(f"{fleet.url}/api/v1/worker/claim", headers=w1, json={"wait_seconds": 0})
            assert claim.status_code == 200
            held = httpx.post(f"{fleet.url}/api/v1/worker/claim", headers=w2, json={"wait_seconds": 0})
            assert held.status_code == 204  # the user's one running slot is taken
            done = httpx.post(f"{fleet.url}/api/v1/worker/jobs/{claim.json()['id']}/complete", headers=w1,
                              json={"fencing_token": claim.json()["fencing_token"], "outputs": []})
            assert done.status_code == 204, done.text
            second = httpx.post(f"{fleet.url}/api/v1/worker/claim", headers=w2, json={"wait_seconds": 5})
            assert second.status_code == 200 and second.json()["id"] != claim.json()["id"]
            httpx.post(f"{fleet.url}/api/v1/worker/jobs/{second.json()['id']}/complete", headers=w2,
                       json={"fencing_token": second.json()["fencing_token"], "outputs": []})
            answers = [c.result() for c in calls]
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        jobs = {json.loads(a.json()["info"])["job_id"] for a in answers}
        assert jobs == {claim.json()["id"], second.json()["id"]}
    finally:
        fleet.server.stop()
        fleet.server.runtime.database.dispose()
