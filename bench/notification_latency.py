"""Notification delivery latency: a job's outcome committed → its signed webhook read by a receiver on
this host, p50/p95 over sequential events, next to a direct signed POST to the same receiver (baseline).

    python bench/notification_latency.py [--events 100] [--database-url postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from sdfleet.bootstrap import build_app
    from sdfleet.domain.ids import new_id
    from sdfleet.jobs.spec import GenerateSpec, JobSummary
    from sdfleet.services.webhook_sender import WebhookPolicy, WebhookSender
    from sdfleet.store.jobs import NewJob, SqlJobQueue
    from sdfleet.store.types import utcnow
    from tests.fixtures.notifications import WebhookReceiver, wait_until
    from tests.fixtures.runtime import make_runtime

    receiver = WebhookReceiver().start()
    runtime = make_runtime(Path(tempfile.mkdtemp(prefix="sdfleet-bench-")), database_url=args.database_url,
                           webhook_allowed_hosts=[f"127.0.0.1:{receiver.port}"])
    queue = SqlJobQueue(runtime.database)
    try:
        # 1. Baseline: the same signed POST, sent directly.
        sender = WebhookSender(policy=WebhookPolicy(allowed_hosts=frozenset({f"127.0.0.1:{receiver.port}"})))
        direct = []
        for _ in range(args.events):
            start = time.perf_counter()
            sender.send(url=receiver.url("/direct"), secret="whsec_" + "A" * 44, message_id=new_id(),
                        timestamp=datetime.now(UTC), body='{"type":"bench"}')
            direct.append(receiver.at("/direct")[-1].arrived - start)
        # 2. Through the outbox: commit a job's outcome, wait for the receiver.
        with TestClient(build_app(runtime, local_workers=0)) as client:
            token = client.post("/api/v1/auth/login", json={"username": "admin", "password": "admin-password-123"})
            headers = {"Authorization": f"Bearer {token.json()['token']}"}
            me = client.get("/api/v1/me", headers=headers).json()["id"]
            client.post("/api/v1/notifications/subscriptions", headers=headers,
                        json={"channel": "webhook", "url": receiver.url("/outbox")}).raise_for_status()
            outbox = []
            for n in range(args.events + 5):
                job = queue.submit(NewJob(id=new_id(), user_id=me, endpoint="default",
                                          spec=GenerateSpec(graph={}), summary=JobSummary(prompt="bench"), max_attempts=1, idempotency_key=None,
                                          request_hash=None), now=utcnow())
                lease = queue.claim(worker_id="w", endpoints=["default"], now=utcnow(), lease_seconds=30)
                queue.complete(job.id, token=lease.fencing_token, outputs=[], now=utcnow())
                committed = time.perf_counter()
                arrived = wait_until(lambda n=n: len(receiver.at("/outbox")) > n and receiver.at("/outbox")[n],
                                     timeout=30, what="the webhook")
                if n >= 5:  # the first few warm connections and caches
                    outbox.append(arrived.arrived - committed)
    finally:
        receiver.stop()
        runtime.database.dispose()
    d50, d95 = percentiles(direct)
    o50, o95 = percentiles(outbox)
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(f"{backend}, {args.events} sequential events")
    print(f"direct signed POST      p50 {d50 * 1000:7.1f} ms   p95 {d95 * 1000:7.1f} ms")
    print(f"event → receiver        p50 {o50 * 1000:7.1f} ms   p95 {o95 * 1000:7.1f} ms")
    print(f"ratio (outbox / direct) p50 {o50 / d50:7.2f}      p95 {o95 / d95:7.2f}")


if __name__ == "__main__":
    main()
