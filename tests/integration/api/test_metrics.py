"""GET /metrics: who may scrape, and that the figures follow the fleet (queue, jobs, replicas, job times, HTTP)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sdfleet.bootstrap import build_app
from tests.fixtures.runtime import Api, make_runtime
from tests.integration.web.api_jobs import finish_next, graph_job, png

TOKEN = "metrics-token-0123456789"


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def metrics_api(tmp_path):
    rt = make_runtime(tmp_path, metrics_token=TOKEN)
    with TestClient(build_app(rt, local_workers=0)) as client:
        yield Api(client=client, runtime=rt)
    rt.database.dispose()


def _scrape(api: Api) -> dict:
    r = api.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return _samples(r.text)


def test_who_may_scrape(metrics_api):
    api = metrics_api
    assert api.client.get("/metrics").status_code == 401
    assert api.client.get("/metrics", headers={"Authorization": "Bearer not-the-token"}).status_code == 401
    artist = api.make_user(roles=["artist"])
    r = api.client.get("/metrics", headers=artist["headers"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert api.client.get("/metrics", headers=api.admin()).status_code == 200
    assert api.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_without_a_token_only_admins_scrape(api):
    # No SDFLEET_METRICS_TOKEN: an empty bearer or any string is never the token.
    assert api.client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
    assert api.client.get("/metrics", headers=api.admin()).status_code == 200


def test_figures_follow_the_fleet(metrics_api):
    api = metrics_api
    artist = api.make_user(roles=["artist"])
    before = _scrape(api)
    assert _value(before, "sdfleet_queue_depth", endpoint="default") == 0

    graph_job(api, artist["headers"])
    graph_job(api, artist["headers"])
    queued = _scrape(api)
    assert _value(queued, "sdfleet_queue_depth", endpoint="default") == 2
    assert _value(queued, "sdfleet_jobs", kind="inference", status="queued") == 2
    assert _value(queued, "sdfleet_queue_oldest_wait_seconds", endpoint="default") >= 0

    job_id = finish_next(api, [png()], worker="metrics-w")
    after = _scrape(api)
    assert _value(after, "sdfleet_queue_depth", endpoint="default") == 1
    assert _value(after, "sdfleet_jobs", kind="inference", status="succeeded") == 1
    assert _value(after, "sdfleet_job_wait_seconds_count", endpoint="default", kind="inference") == 1
    assert _value(after, "sdfleet_job_run_seconds_count", endpoint="default", kind="inference",
                  status="succeeded") == 1
    user_id = api.client.get("/api/v1/me", headers=artist["headers"]).json()["id"]
    assert _value(after, "sdfleet_gpu_seconds_total", user_id=user_id, endpoint="default") > 0
    assert job_id
    # the worker that finished it is a replica of `default`, idle now
    assert _value(after, "sdfleet_replicas", endpoint="default", state="idle") == 1
    # a replica holding a running job is busy (derived from the job: busy is not written per claim)
    token = api.runtime.services.workers.register(name="metrics-busy", endpoint="default").token
    held = api.client.post("/api/v1/worker/claim", headers={"Authorization": f"Bearer {token}"},
                           json={"wait_seconds": 0})
    assert held.status_code == 200, held.text
    busy = _scrape(api)
    assert _value(busy, "sdfleet_replicas", endpoint="default", state="busy") == 1
    assert _value(busy, "sdfleet_replicas", endpoint="default", state="idle") == 1


def test_http_latency_by_route_template(metrics_api):
    api = metrics_api
    headers = api.admin()
    for _ in range(3):
        assert api.client.get("/api/v1/inferences/J0000000000000000000000000", headers=headers).status_code == 404
    samples = _scrape(api)
    assert _value(samples, "sdfleet_http_request_duration_seconds_count", method="GET",
                  route="/api/v1/inferences/{job_id}", status="404") == 3
    assert not [labels for (name, labels) in samples
                if name.startswith("sdfleet_http") and ("route", "/api/v1/inferences/J0000000000000000000000000")
                in labels]
