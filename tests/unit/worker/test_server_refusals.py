"""The worker retries what may pass (network errors, 5xx) and stops on what cannot (a refused token);
the parent watch notices a parent that is gone."""

from __future__ import annotations

import os
import threading

import httpx
import pytest

from sdfleet.jobs.wire import WorkerAssignment
from sdfleet.worker.client import ServerError, TokenRefused
from sdfleet.worker.parent_watch import watch_parent
from sdfleet.worker.runner import WorkerLoop, WorkerOptions


class ScriptedClient:
    """A WorkerClient whose claims follow a script: an exception to raise, or None (no job)."""

    def __init__(self, claims: list) -> None:
        self.claims = list(claims)
        self.calls = 0
        self.loop: WorkerLoop | None = None

    def report(self, **_kwargs) -> None:
        pass

    def assignment(self) -> WorkerAssignment:
        return WorkerAssignment(endpoint="default", preload=[])

    def claim(self, *, wait_seconds: float):
        self.calls += 1
        step = self.claims.pop(0) if self.claims else None
        if not self.claims:
            self.loop.stopping.set()
        if isinstance(step, BaseException):
            raise step
        return step


def _loop(claims: list) -> tuple[WorkerLoop, ScriptedClient]:
    client = ScriptedClient(claims)
    loop = WorkerLoop(client=client, cache=None, options=WorkerOptions(claim_wait_seconds=0.1))
    client.loop = loop
    return loop, client


def test_network_errors_and_server_errors_are_retried():
    request = httpx.Request("POST", "http://127.0.0.1:9/api/v1/worker/claim")
    loop, client = _loop([httpx.ConnectError("refused", request=request),
                          ServerError("POST /claim: 503 database restarting"), None, None])
    loop.run()
    assert client.calls == 4


def test_a_refused_token_ends_the_worker():
    loop, client = _loop([None, TokenRefused("the server refused this worker's token"), None, None])
    with pytest.raises(TokenRefused):
        loop.run()
    assert client.calls == 2


def test_parent_watch_fires_when_the_parent_is_not_ours():
    fired = threading.Event()
    # From a thread other than the main one only the pid watch runs (a signal handler needs the main thread).
    starter = threading.Thread(target=lambda: watch_parent(os.getppid() + 1_000_000, fired.set, interval=0.05))
    starter.start()
    starter.join()
    assert fired.wait(timeout=30)


def test_parent_watch_stays_quiet_while_the_parent_lives():
    fired, watchers = threading.Event(), []
    starter = threading.Thread(target=lambda: watchers.append(watch_parent(os.getppid(), fired.set, interval=0.01)))
    starter.start()
    starter.join()
    assert watchers[0].is_alive() and not fired.wait(timeout=0.3)
