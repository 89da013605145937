"""The progress contract: the first and last step of every sampler node reach the server, in order, before the
job completes, however the throttle falls; the steps between are throttled."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import httpx

from sdfleet.jobs.wire import ClaimedJob
from sdfleet.worker.client import ServerError
from sdfleet.worker.runner import _Heartbeat

JOB = ClaimedJob(id="j1", fencing_token=1, lease_expires_at=datetime(2026, 1, 1, tzinfo=UTC), lease_seconds=30.0,
                 graph={}, models=[], inputs=[], extra={})


class RecordingClient:
    """Records every heartbeat's progress; fails the calls listed in `failures` (by call number)."""

    def __init__(self, failures: set[int] = frozenset()) -> None:
        self.sent: list[tuple] = []
        self.calls = 0
        self.failures = failures
        self.lock = threading.Lock()

    def heartbeat(self, job, *, value=None, maximum=None, node_id=None, preview_png=None, metrics=None,
                  loading_model=None) -> bool:
        with self.lock:
            self.calls += 1
            if self.calls in self.failures:
                raise httpx.ConnectError("connection reset")
            if value is not None:
                self.sent.append((value, maximum, node_id))
        return False


def _run(client, nodes: dict[str, int]) -> list[tuple]:
    heartbeat = _Heartbeat(client, JOB)
    heartbeat.start()
    for node_id, steps in nodes.items():
        for value in range(1, steps + 1):
            heartbeat.progress(value, steps, node_id, None)
    heartbeat.finish()
    return client.sent


def _assert_contract(sent: list[tuple], nodes: dict[str, int]) -> None:
    for node_id, steps in nodes.items():
        mine = [s for s in sent if s[2] == node_id]
        assert (1, steps, node_id) in mine and (steps, steps, node_id) in mine, (node_id, sent)
        assert mine.index((1, steps, node_id)) < mine.index((steps, steps, node_id))
    order = [s[2] for s in sent]
    assert order == sorted(order, key=list(nodes).index), sent  # node by node, as they ran


def test_first_and_last_step_of_each_sampler_are_sent_and_the_rest_throttled():
    nodes = {"3": 200, "12": 50}
    sent = _run(RecordingClient(), nodes)
    _assert_contract(sent, nodes)
    assert len(sent) < 250  # the steps in between were throttled


def test_milestones_survive_a_failed_heartbeat():
    nodes = {"3": 20}
    # The first heartbeat (carrying step 1) fails; the next one, at the latest before completion, sends it.
    sent = _run(RecordingClient(failures={1}), nodes)
    _assert_contract(sent, nodes)


def test_one_step_sampler_sends_its_single_step():
    sent = _run(RecordingClient(), {"3": 1})
    assert sent and set(sent) == {(1, 1, "3")}


def test_a_server_error_during_finish_does_not_raise():
    client = RecordingClient()
    client.heartbeat = lambda *a, **k: (_ for _ in ()).throw(ServerError("503"))
    heartbeat = _Heartbeat(client, JOB)
    heartbeat.progress(1, 2, "3", None)
    heartbeat.finish()  # never started: finish sends the pending milestones itself, logging the failure
    assert not heartbeat.lease_lost
