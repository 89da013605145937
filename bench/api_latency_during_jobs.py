"""Does the API stall while a worker runs jobs? Event-loop lag and GET latency, idle vs busy, in one run.

A live in-process server (tests/fixtures/live.py `start_fleet`: uvicorn in a thread, SQLite + local objects, the
demo models) with an SMTP sink and a webhook receiver subscribed to every job (the notification e2e test's shape),
one real `sdfleet worker` subprocess. Inside the server's event loop a probe task sleeps 10 ms in a loop and records
the overshoot (event-loop lag); asyncio debug mode logs every callback over 100 ms with where it was created
(`slow_callback_duration`). Beside it a client thread GETs `/api/v1/inferences/{id}` (authenticated) in a loop.

Phase start: from the server's first request (login) to a warm-up job's end. Phase idle: the worker is warm and long-polling, nothing queued, IDLE_SECONDS. Phase busy: JOBS jobs (SIZE², 2 steps;
64² is the failing test's job) submitted at once, until all finished, each mailed and posted. Prints, per phase, max and p99 lag in ms, max and
p99 GET latency in ms, and the slow callbacks seen. Run: `.venv/bin/python bench/api_latency_during_jobs.py [JOBS [SIZE]]`.
For where the GIL goes, run `py-spy record --threads --pid <pid printed>` beside it."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

IDLE_SECONDS = 15.0
JOBS = int(sys.argv[1]) if len(sys.argv) > 1 else 40
SIZE = int(sys.argv[2]) if len(sys.argv) > 2 else 64
PARAMS = {"prompt": "a lighthouse at dusk", "steps": 2, "width": SIZE, "height": SIZE}


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


class SlowCallbacks(logging.Handler):
    """Collects asyncio's 'Executing <Handle …> took N seconds' warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "took" in message:
            self.records.append(message)


class Probe:
    """Event-loop lag samples (s) recorded inside the server's loop, and GET latencies (s) from a client thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, url: str, headers: dict | None = None,
                 job_id: str | None = None) -> None:
        self.loop, self.url, self.headers, self.job_id = loop, url, headers, job_id
        self.lags: list[float] = []
        self.gets: list[float] = []
        self.stopped = threading.Event()

    async def _lag(self) -> None:
        while not self.stopped.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.010)
            self.lags.append(time.perf_counter() - t - 0.010)

    def _get(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=120) as client:
            while not self.stopped.is_set():
                t = time.perf_counter()
                client.get(f"/api/v1/inferences/{self.job_id}").raise_for_status()
                self.gets.append(time.perf_counter() - t)
                self.stopped.wait(0.05)

    def start(self) -> Probe:
        asyncio.run_coroutine_threadsafe(self._lag(), self.loop)
        self.thread = threading.Thread(target=self._get, daemon=True) if self.job_id else None
        if self.thread:
            self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        if self.thread:
            self.thread.join(timeout=130)


def report(phase: str, probe: Probe, slow: list[str]) -> None:
    ms = 1000
    gets = (f"GET max {max(probe.gets) * ms:8.1f} ms  p99 {percentile(probe.gets, 99) * ms:7.1f} ms  "
            f"p50 {percentile(probe.gets, 50) * ms:6.1f} ms  ({len(probe.gets)} GETs)") if probe.gets else ""
    print(f"{phase:5}  lag max {max(probe.lags) * ms:8.1f} ms  p99 {percentile(probe.lags, 99) * ms:7.1f} ms  "
          f"({len(probe.lags)} samples)   {gets}   callbacks >100 ms: {len(slow)}")
    for line in slow[:10]:
        print("       ", line[:250], "…" + line[line.rfind(" took "):] if len(line) > 250 else "")


def main() -> None:
    from sdfleet.engine.demo import create_demo_files
    from tests.fixtures.live import start_fleet
    from tests.fixtures.notifications import SmtpSink, WebhookReceiver, body_of

    print(f"pid {os.getpid()}  cores {os.cpu_count()}  load {os.getloadavg()[0]:.2f}  jobs {JOBS} of {SIZE}²")
    tmp = Path(tempfile.mkdtemp(prefix="sdfleet-bench-"))
    demo = {f.name: f.path for f in create_demo_files(tmp / "demo")}
    smtp, receiver = SmtpSink().start(), WebhookReceiver().start()
    fleet = start_fleet(tmp / "fleet", demo, smtp_url=smtp.url, mail_from="sdfleet@fleet.example",
                        webhook_allowed_hosts=[f"127.0.0.1:{receiver.port}"])
    slow = SlowCallbacks()
    logging.getLogger("asyncio").addHandler(slow)
    loop = fleet.server.server.servers[0].get_loop()

    def debug_on() -> None:
        loop.set_debug(True)
        loop.slow_callback_duration = 0.1

    loop.call_soon_threadsafe(debug_on)
    # Phase start: the server's first requests (login, subscriptions, a warm-up job: the model's first load).
    start = Probe(loop, fleet.url).start()
    try:
        t = time.perf_counter()
        admin = fleet.login()
        first = time.perf_counter() - t
        api = httpx.Client(base_url=fleet.url, headers=admin, timeout=120)
        api.post("/api/v1/notifications/subscriptions", json={"channel": "email", "address": "lead@example.com"})
        [confirmation] = smtp.wait_for("lead@example.com")
        token = re.search(r"token=(\S+)", body_of(confirmation, "plain")).group(1)
        api.post("/api/v1/notifications/confirm", json={"token": token}).raise_for_status()
        api.post("/api/v1/notifications/subscriptions",
                 json={"channel": "webhook", "url": receiver.url("/all"), "events": ["inference.succeeded"]})
        fleet.start_worker("bench")
        warm = api.post("/api/v1/inferences", json={"task": "txt2img", "params": {**PARAMS, "seed": 1}}).json()["id"]
        assert fleet.wait(admin, warm)["status"] == "succeeded"
        start.stop()
        start_slow, slow.records = slow.records, []

        idle = Probe(loop, fleet.url, admin, warm).start()
        time.sleep(IDLE_SECONDS)  # a fixed window to sample, not a wait for a state
        idle.stop()
        idle_slow, slow.records = slow.records, []

        busy = Probe(loop, fleet.url, admin, warm).start()
        t = time.perf_counter()
        ids = [api.post("/api/v1/inferences", json={"task": "txt2img", "params": {**PARAMS, "seed": 10 + i}}).json()["id"]
               for i in range(JOBS)]
        for job_id in ids:
            assert fleet.wait(admin, job_id)["status"] == "succeeded"
        busy.stop()
        elapsed = time.perf_counter() - t
        print(f"load {os.getloadavg()[0]:.2f}  {JOBS} jobs in {elapsed:.1f} s")
        print(f"first request (login) {first * 1000:.1f} ms")
        report("start", start, start_slow)
        report("idle", idle, idle_slow)
        report("busy", busy, slow.records)
    finally:
        fleet.stop()
        smtp.stop()
        receiver.stop()


if __name__ == "__main__":
    main()
