"""SIGTERM: an idle worker leaves at once; a busy one finishes its job first, then exits.

No test here depends on how fast the box is: each waits for a state (a reported step, a worker inside its
long-poll claim) with a generous deadline."""

import signal
import time

import httpx
import pytest

from tests.fixtures.live import wait_for_progress
from tests.integration.jobs.test_inference_e2e import TXT2IMG, submit

#: far beyond what the job needs however loaded the box: the drain must end by the job finishing, not by time
GENEROUS_DRAIN = 480.0


@pytest.mark.timeout(900)
def test_sigterm_finishes_the_running_job_then_exits(fleet):
    admin = fleet.login()
    worker = fleet.start_worker("term", drain_seconds=GENEROUS_DRAIN)
    job_id = submit(fleet, admin, {"task": "txt2img", "params": {**TXT2IMG, "steps": 60}})
    wait_for_progress(fleet, admin, job_id, steps=1, timeout=240)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=GENEROUS_DRAIN + 30) == 0
    job = httpx.get(f"{fleet.url}/api/v1/inferences/{job_id}", headers=admin).json()
    assert job["status"] == "succeeded" and job["attempts"] == 1, job
    assert "finishing the current job" in (fleet.tmp / "worker-term.log").read_text()


def test_sigterm_while_idle_exits_promptly(fleet):
    worker = fleet.start_worker("idle")
    notifier = fleet.server.runtime.services.notifier
    deadline = time.monotonic() + 240
    while not notifier.waiting("queue:default"):  # the worker sits in a long-poll claim (20 s)
        assert worker.poll() is None and time.monotonic() < deadline, "worker never reached its claim"
        time.sleep(0.05)
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    # It left the poll rather than sitting out the claim's 20 s (a margin wide enough for a loaded box).
    assert time.monotonic() - started < 15
    assert "idle, exiting" in (fleet.tmp / "worker-idle.log").read_text()
