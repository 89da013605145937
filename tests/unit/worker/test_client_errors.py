"""The worker client names what the server answered: a model it cannot have is ModelMissing, not a lost lease."""

from __future__ import annotations

import httpx
import pytest

from sdfleet.worker.client import LeaseLost, ModelMissing, WorkerClient


def client_answering(status: int) -> WorkerClient:
    client = WorkerClient("http://server", "sfw_token")
    client._http = httpx.Client(base_url="http://server/api/v1/worker",
                                transport=httpx.MockTransport(lambda request: httpx.Response(status, text="no")))
    return client


@pytest.mark.parametrize("status", [404, 410])
def test_a_missing_model_is_model_missing(status):
    with pytest.raises(ModelMissing) as missing:
        list(client_answering(status).stream_model("ab" * 32))
    assert missing.value.sha256 == "ab" * 32 and not isinstance(missing.value, LeaseLost)


def test_a_refused_fencing_token_is_a_lost_lease():
    from datetime import UTC, datetime

    from sdfleet.jobs.wire import ClaimedJob

    job = ClaimedJob(id="j", fencing_token=1, lease_expires_at=datetime(2026, 1, 1, tzinfo=UTC), lease_seconds=5,
                     models=[], inputs=[])
    with pytest.raises(LeaseLost):
        client_answering(409).cancelled(job)


def test_the_loading_model_heartbeat_is_a_valid_request_with_no_step():
    import json
    from datetime import UTC, datetime

    from sdfleet.jobs.wire import ClaimedJob, HeartbeatRequest

    sent = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(HeartbeatRequest.model_validate(json.loads(request.content)))  # as the server reads it
        return httpx.Response(200, json={"cancel_requested": False, "lease_expires_at": "2026-01-01T00:00:00Z"})

    client = WorkerClient("http://server", "sfw_token")
    client._http = httpx.Client(base_url="http://server/api/v1/worker", transport=httpx.MockTransport(answer))
    job = ClaimedJob(id="j", fencing_token=1, lease_expires_at=datetime(2026, 1, 1, tzinfo=UTC), lease_seconds=5,
                     models=[], inputs=[])
    client.heartbeat(job, loading_model="demo.safetensors")
    assert sent[0].phase == "loading_model" and sent[0].model == "demo.safetensors" and sent[0].value is None
    with pytest.raises(ValueError):
        HeartbeatRequest.model_validate({"fencing_token": 1, "phase": "dreaming"})


def test_a_server_older_than_the_phase_still_gets_the_beat():
    from datetime import UTC, datetime

    from sdfleet.jobs.wire import ClaimedJob

    bodies = []

    def older_server(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        if b"phase" in request.content:  # `extra="forbid"` before the field existed
            return httpx.Response(422, json={"detail": "extra fields not permitted"})
        return httpx.Response(200, json={"cancel_requested": True, "lease_expires_at": "2026-01-01T00:00:00Z"})

    client = WorkerClient("http://server", "sfw_token")
    client._http = httpx.Client(base_url="http://server/api/v1/worker", transport=httpx.MockTransport(older_server))
    job = ClaimedJob(id="j", fencing_token=1, lease_expires_at=datetime(2026, 1, 1, tzinfo=UTC), lease_seconds=5,
                     models=[], inputs=[])
    assert client.heartbeat(job, loading_model="demo.safetensors") is True
    assert len(bodies) == 2 and b"phase" not in bodies[1]


def test_a_server_older_than_model_loads_still_gets_the_completion():
    import json
    from datetime import UTC, datetime

    from sdfleet.jobs.records import ModelLoad, ModelSource
    from sdfleet.jobs.wire import ClaimedJob

    bodies = []

    def older_server(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        if "model_loads" in bodies[-1]:  # FastAPI's answer to `extra="forbid"` before the field existed
            return httpx.Response(422, json={"detail": [{"type": "extra_forbidden", "loc": ["body", "model_loads"],
                                                         "msg": "Extra inputs are not permitted"}]})
        return httpx.Response(204)

    client = WorkerClient("http://server", "sfw_token")
    client._http = httpx.Client(base_url="http://server/api/v1/worker", transport=httpx.MockTransport(older_server))
    job = ClaimedJob(id="j", fencing_token=1, lease_expires_at=datetime(2026, 1, 1, tzinfo=UTC), lease_seconds=5,
                     models=[], inputs=[])
    client.complete(job, outputs=[], info={"seed": 1},
                    model_loads=[ModelLoad(sha256="ab" * 32, source=ModelSource.DISK, seconds=1.5)])
    assert len(bodies) == 2 and "model_loads" in bodies[0]
    assert "model_loads" not in bodies[1] and bodies[1]["info"] == {"seed": 1} and bodies[1]["fencing_token"] == 1


def test_a_completion_refused_for_another_field_is_not_resent():
    from datetime import UTC, datetime

    from sdfleet.jobs.records import ModelLoad, ModelSource
    from sdfleet.jobs.wire import ClaimedJob
    from sdfleet.worker.client import ServerError

    bodies = []

    def server(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(422, json={"detail": [{"type": "missing", "loc": ["body", "outputs"]}]})

    client = WorkerClient("http://server", "sfw_token")
    client._http = httpx.Client(base_url="http://server/api/v1/worker", transport=httpx.MockTransport(server))
    job = ClaimedJob(id="j", fencing_token=1, lease_expires_at=datetime(2026, 1, 1, tzinfo=UTC), lease_seconds=5,
                     models=[], inputs=[])
    with pytest.raises(ServerError):
        client.complete(job, outputs=[], info={},
                        model_loads=[ModelLoad(sha256="ab" * 32, source=ModelSource.DISK, seconds=1.5)])
    assert len(bodies) == 1
