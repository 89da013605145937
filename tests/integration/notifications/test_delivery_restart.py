"""`kill -9` of the API server mid-retry, on SQLite and PostgreSQL: after a restart every event reaches every
receiver (also one recorded while the server was down), and a receiver that accepted gets nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sdfleet.domain.ids import new_id
from sdfleet.domain.notifications import DeliveryStatus
from sdfleet.jobs.spec import GenerateSpec, JobSummary
from sdfleet.store.database import Database
from sdfleet.store.jobs import NewJob, SqlJobQueue
from sdfleet.store.notification_deliveries import SqlDeliveries
from sdfleet.store.tables import NotificationDeliveryRow
from sdfleet.store.types import utcnow
from tests.fixtures.live import free_port
from tests.fixtures.notifications import Behaviour, WebhookReceiver, wait_until
from tests.fixtures.runtime import ADMIN_PASSWORD

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


class Server:
    """`sdfleet serve` as a subprocess that the test kills with SIGKILL."""

    def __init__(self, tmp: Path, database_url: str, receiver: WebhookReceiver) -> None:
        self.tmp = tmp
        self.env = {
            **os.environ, "SDFLEET_DATA_DIR": str(tmp / "data"), "SDFLEET_DATABASE_URL": database_url,
            "SDFLEET_ADMIN_PASSWORD": ADMIN_PASSWORD, "SDFLEET_SECRET_KEY": "restart-test-secret-key-0123",
            "SDFLEET_LOCAL_WORKERS": "0", "SDFLEET_WEBHOOK_ALLOWED_HOSTS": json.dumps([f"127.0.0.1:{receiver.port}"]),
            # The first retry waits 2 s: the server is killed inside that window.
            "SDFLEET_NOTIFY_RETRY_BASE_SECONDS": "2", "SDFLEET_NOTIFY_RETRY_MAX_SECONDS": "2",
            "SDFLEET_NOTIFY_MAX_ATTEMPTS": "8", "SDFLEET_LOGIN_ATTEMPTS_PER_ADDRESS": "1000",
            # the test writes its event from this process: the server finds it at its next poll
            "SDFLEET_NOTIFY_POLL_SECONDS": "2",
        }
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> Server:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        log = (self.tmp / f"server-{port}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sdfleet.cli", "serve", "--port", str(port), "--no-demo", "--comfy-port", "0"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def up() -> bool:
            assert self.proc.poll() is None, (self.tmp / f"server-{port}.log").read_text()[-3000:]
            try:
                return httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=90, what="the server to start")
        return self

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def finish_job(database: Database, user_id: str) -> None:
    queue = SqlJobQueue(database)
    job = queue.submit(NewJob(id=new_id(), user_id=user_id, endpoint="default", spec=GenerateSpec(graph={}),
                              summary=JobSummary(prompt="restart"), max_attempts=1, idempotency_key=None,
                              request_hash=None), now=utcnow())
    lease = queue.claim(worker_id="w", endpoints=["default"], now=utcnow(), lease_seconds=30)
    queue.complete(job.id, token=lease.fencing_token, outputs=[], now=utcnow())


def test_kill_minus_nine_mid_retry_loses_nothing_and_sends_nothing_twice(tmp_path, database_url):
    receiver = WebhookReceiver().start()
    receiver.behaviours = {"/accept": Behaviour(), "/flaky": Behaviour(fail_first=1)}
    server = Server(tmp_path, database_url, receiver).start()
    database = Database(database_url)
    try:
        client = httpx.Client(base_url=server.url, timeout=30)
        token = client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['token']}"}
        admin_id = client.get("/api/v1/me", headers=headers).json()["id"]
        for path in ("/accept", "/flaky"):
            r = client.post("/api/v1/notifications/subscriptions", headers=headers,
                            json={"channel": "webhook", "url": receiver.url(path)})
            assert r.status_code == 201, r.text
            receiver.secrets[path] = r.json()["secret"]
        # 1. An event: /accept takes it, /flaky refuses the first attempt; its retry is 2 s away.
        finish_job(database, admin_id)

        def first_attempts_recorded() -> bool:
            # A 2xx the server did not record yet would be sent again (at least once, same webhook-id):
            # the kill comes once both outcomes are in the database, while /flaky waits for its retry.
            with database.session(write_lock=False) as s:
                rows = {r.subscription_id: r for r in s.query(NotificationDeliveryRow)}
            return sorted((r.status, r.attempts) for r in rows.values()) == [("pending", 1), ("succeeded", 1)]

        wait_until(first_attempts_recorded, what="the first attempts")
        server.kill()
        # 2. While the server is down, another job finishes: its event waits in the outbox.
        finish_job(database, admin_id)
        assert len(receiver.accepted("/flaky")) == 0
        # 3. Restart: the pending retry and the new event are delivered.
        server.start()
        wait_until(lambda: len(receiver.accepted("/flaky")) == 2 and len(receiver.accepted("/accept")) == 2,
                   timeout=60, what="both events at both receivers after the restart")
        deliveries = SqlDeliveries(database)

        def settled() -> bool:
            with database.session(write_lock=False) as s:
                statuses = [r.status for r in s.query(NotificationDeliveryRow)]
            return deliveries.pending_events() == 0 and statuses == [DeliveryStatus.SUCCEEDED.value] * 4

        wait_until(settled, what="every delivery recorded as succeeded")
        for path in ("/accept", "/flaky"):
            accepted = [r.webhook_id for r in receiver.accepted(path)]
            assert len(accepted) == len(set(accepted)) == 2, (path, accepted)
            assert all(r.verified for r in receiver.at(path))
        assert [r.answered for r in receiver.at("/accept")] == [200, 200]
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.kill()
        database.dispose()
        receiver.stop()
