"""SIGTERM: an idle worker leaves at once; a busy one finishes its job first, then exits."""

import signal
import time

import httpx

from tests.fixtures.live import wait_for_progress
from tests.integration.jobs.test_inference_e2e import TXT2IMG, submit


def test_sigterm_finishes_the_running_job_then_exits(fleet):
    admin = fleet.login()
    worker = fleet.start_worker("term")
    job_id = submit(fleet, admin, {"task": "txt2img", "params": {**TXT2IMG, "steps": 60}})
    wait_for_progress(fleet, admin, job_id, steps=1)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=120) == 0
    job = httpx.get(f"{fleet.url}/api/v1/inferences/{job_id}", headers=admin).json()
    assert job["status"] == "succeeded" and job["attempts"] == 1


def test_sigterm_while_idle_exits_promptly(fleet):
    worker = fleet.start_worker("idle")
    deadline = time.monotonic() + 60
    log = fleet.tmp / "worker-idle.log"
    while "worker idle:" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1.5)  # reported itself and now waits inside a long-poll claim
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    assert time.monotonic() - started < 5
