"""GET /metrics: who may scrape, and that the figures follow the fleet (queue, jobs, replicas, job times, HTTP)."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sdfleet.api.metrics_middleware import HttpMetricsMiddleware
from sdfleet.bootstrap import build_app
from tests.fixtures.live import Fleet
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
    # a graph with no checkpoint: the model label is empty
    assert _value(after, "sdfleet_job_wait_seconds_count", endpoint="default", kind="inference", model="") == 1
    assert _value(after, "sdfleet_job_run_seconds_count", endpoint="default", kind="inference", model="",
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


def test_a_real_workers_jobs_report_model_loads_and_label_job_times_by_model(fleet: Fleet):
    """A `sdfleet worker` runs two txt2img jobs on the demo checkpoint: the first downloads it, the second finds it
    in the engine's memory; both jobs' times carry the checkpoint's registry name."""
    admin = fleet.login()
    fleet.start_worker("metrics-real")
    body = {"task": "txt2img", "params": {"prompt": "a red cube", "steps": 2, "width": 64, "height": 64,
                                          "seed": 1, "sampler_name": "Euler"}}
    for _ in range(2):
        r = httpx.post(f"{fleet.url}/api/v1/inferences", json=body, headers=admin)
        assert r.status_code == 202, r.text
        assert fleet.wait(admin, r.json()["id"])["status"] == "succeeded"
    r = httpx.get(f"{fleet.url}/metrics", headers=admin)
    assert r.status_code == 200, r.text
    samples = _samples(r.text)
    ckpt = {"folder": "checkpoints", "model": "demo-sd15.safetensors"}
    assert _value(samples, "sdfleet_model_cache_total", **ckpt, result="download") == 1
    assert _value(samples, "sdfleet_model_cache_total", **ckpt, result="memory") == 1
    assert _value(samples, "sdfleet_model_cache_total", **ckpt, result="disk") == 0
    assert _value(samples, "sdfleet_model_load_seconds_count", **ckpt) == 2
    assert _value(samples, "sdfleet_model_load_seconds_sum", **ckpt) > 0
    labels = {"endpoint": "default", "kind": "inference", "model": "demo-sd15.safetensors"}
    assert _value(samples, "sdfleet_job_wait_seconds_count", **labels) == 2
    assert _value(samples, "sdfleet_job_run_seconds_count", **labels, status="succeeded") == 2
    # labels come from the registry's names only: no sha256 or free text
    assert {dict(labels)["model"] for (name, labels) in samples if name.startswith("sdfleet_model_")} == \
        {"demo-sd15.safetensors"}


def test_route_templates_are_read_at_startup_not_on_a_first_request(tmp_path):
    # Reading the route table costs ~0.4 s of Python on the event loop (seconds on a loaded box): done on a first
    # request, it stalled every request in flight. At lifespan startup uvicorn is not listening yet.
    rt = make_runtime(tmp_path, metrics_token=TOKEN)
    app = build_app(rt, local_workers=0)
    assert getattr(app.state, "documented_paths", None) is None
    with TestClient(app):
        assert "/api/v1/inferences/{job_id}" in app.state.documented_paths
        layer = app.middleware_stack
        while not isinstance(layer, HttpMetricsMiddleware):
            layer = layer.app
        assert layer._match is not None
        assert layer._match("/api/v1/inferences/abc") == "/api/v1/inferences/{job_id}"
    rt.database.dispose()
