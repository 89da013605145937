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
