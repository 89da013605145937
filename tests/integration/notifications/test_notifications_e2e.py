"""Notifications end to end on SQLite and PostgreSQL: the app with its delivery worker, a real SMTP server
(aiosmtpd) and a real HTTP receiver verifying Standard Webhooks signatures. Retry delays are tens of
milliseconds (injected through the settings), so nothing waits for real backoff."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from sdfleet.bootstrap import build_app
from sdfleet.domain.ids import new_id
from sdfleet.jobs.records import JobOutput
from sdfleet.jobs.spec import GenerateSpec, JobSummary
from sdfleet.store.jobs import NewJob, SqlJobQueue
from sdfleet.store.notification_deliveries import SqlDeliveries
from sdfleet.store.types import utcnow
from tests.fixtures.notifications import Behaviour, SmtpSink, WebhookReceiver, body_of, wait_until
from tests.fixtures.runtime import Api, make_runtime

pytestmark = pytest.mark.timeout(300)


@dataclass
class World:
    api: Api
    smtp: SmtpSink
    receiver: WebhookReceiver

    @property
    def client(self) -> TestClient:
        return self.api.client

    def user(self) -> tuple[str, dict]:
        made = self.api.make_user(roles=["artist"])
        me = self.client.get("/api/v1/me", headers=made["headers"]).json()
        return me["id"], made["headers"]

    def finish_job(self, user_id: str, *, prompt: str = "a red cube", fail: bool = False,
                   webhook: str | None = None) -> str:
        """Run a job through the real queue (no worker process needed); its output is a stored PNG."""
        runtime = self.api.runtime
        queue = SqlJobQueue(runtime.database)
        summary = {"prompt": prompt, "model": "demo-sd15.safetensors", **({"webhook": webhook} if webhook else {})}
        job = queue.submit(NewJob(id=new_id(), user_id=user_id, endpoint="default", spec=GenerateSpec(graph={}),
                                  summary=JobSummary(**summary), max_attempts=1, idempotency_key=None, request_hash=None),
                           now=utcnow())
        lease = queue.claim(worker_id="w", endpoints=["default"], now=job.queued_at, lease_seconds=30)
        if fail:
            queue.fail(job.id, token=lease.fencing_token, error={"code": "bad", "message": "out of memory"},
                       now=job.queued_at)
            return job.id
        key = f"outputs/{job.id}/t{lease.fencing_token}/0.png"
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, format="PNG")
        runtime.objects.put(key, buffer.getvalue(), content_type="image/png")
        queue.complete(job.id, token=lease.fencing_token, now=job.queued_at,
                       outputs=[JobOutput(index=0, key=key, node_id="9", width=64, height=64,
                                          size=len(buffer.getvalue()))])
        return job.id

    def settled(self) -> None:
        """Wait until the delivery worker has fanned out every event recorded so far."""
        deliveries = SqlDeliveries(self.api.runtime.database)
        wait_until(lambda: deliveries.pending_events() == 0, what="the fan-out of recorded events")

    def subscribe(self, headers: dict, **body) -> dict:
        r = self.client.post("/api/v1/notifications/subscriptions", headers=headers, json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def webhook(self, headers: dict, path: str, behaviour: Behaviour | None = None, **body) -> dict:
        self.receiver.behaviours[path] = behaviour or Behaviour()
        sub = self.subscribe(headers, channel="webhook", url=self.receiver.url(path), **body)
        self.receiver.secrets[path] = sub["secret"]
        return sub

    def deliveries(self, headers: dict, subscription_id: str) -> list[dict]:
        r = self.client.get(f"/api/v1/notifications/subscriptions/{subscription_id}/deliveries", headers=headers)
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def confirm(self, address: str) -> None:
        [mail] = self.smtp.wait_for(address)
        link = re.search(r"(http://\S+/notifications/confirm\?token=\S+)", body_of(mail, "plain")).group(1)
        token = httpx.URL(link).params["token"]
        page = self.client.get(f"/notifications/confirm?token={token}")
        assert page.status_code == 200 and "Confirm this address" in page.text  # a GET confirms nothing
        done = self.client.post("/notifications/confirm", data={"token": token})
        assert done.status_code == 200 and "Address confirmed" in done.text, done.text


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request, tmp_path_factory) -> Iterator[World]:
    """One app per backend for the module, with its delivery worker, an SMTP server and a receiver."""
    from tests.fixtures.databases import create_pg_database, drop_pg_database

    database_url = None
    if request.param == "postgres":
        request.getfixturevalue("pg_available")
        database_url = create_pg_database()
    smtp, receiver = SmtpSink().start(), WebhookReceiver().start()
    runtime = make_runtime(
        tmp_path_factory.mktemp("notify"), database_url=database_url, smtp_url=smtp.url,
        mail_from="sdfleet@fleet.example", webhook_allowed_hosts=[f"127.0.0.1:{receiver.port}"],
        webhook_timeout_seconds=1.0, notify_retry_base_seconds=0.05, notify_retry_max_seconds=0.2,
        notify_max_attempts=5, notify_disable_after=2, public_url="http://sdfleet.test:8080")
    with TestClient(build_app(runtime, local_workers=0)) as client:
        yield World(api=Api(client=client, runtime=runtime), smtp=smtp, receiver=receiver)
    runtime.database.dispose()
    smtp.stop()
    receiver.stop()
    if database_url:
        drop_pg_database(database_url)


def test_an_address_gets_only_its_confirmation_until_confirmed_then_job_mail(world: World):
    user_id, headers = world.user()
    address = f"{uuid.uuid4().hex[:8]}@example.com"
    sub = world.subscribe(headers, channel="email", address=address, events=["inference.succeeded"])
    assert sub["status"] == "pending"
    [confirmation] = world.smtp.wait_for(address)
    assert "Confirm" in confirmation["Subject"] and "List-Unsubscribe" not in confirmation
    # Nothing but the confirmation goes to an unconfirmed address: no job mail, no test event.
    world.finish_job(user_id, prompt="before confirming")
    world.settled()
    r = world.client.post(f"/api/v1/notifications/subscriptions/{sub['id']}/test", headers=headers)
    assert r.status_code == 409 and r.json()["error"]["details"]["reason"] == "unconfirmed"
    world.confirm(address)
    assert world.client.get(f"/api/v1/notifications/subscriptions/{sub['id']}",
                            headers=headers).json()["status"] == "active"
    job_id = world.finish_job(user_id, prompt="a lighthouse at dusk")
    mails = world.smtp.wait_for(address, 2)
    assert len(world.smtp.to(address)) == 2, "the event of the job finished before confirmation was not mailed"
    mail = mails[1]
    assert mail["Subject"] == "[sdfleet] Your image is ready: “a lighthouse at dusk”"
    assert mail["From"] == "sdfleet@fleet.example"
    text, html = body_of(mail, "plain"), body_of(mail, "html")
    assert "Prompt: a lighthouse at dusk" in text and "Status: succeeded" in text
    assert f"http://sdfleet.test:8080/gallery?job={job_id}" in text and "gallery" in html
    unsubscribe = re.search(r"Unsubscribe: (\S+)", text).group(1)
    assert mail["List-Unsubscribe"] == f"<{unsubscribe}>" and mail["List-Unsubscribe-Post"]
    # The thumbnail link is a signed URL that serves the image without a login.
    thumbnail = re.search(r'<img src="([^"]+)"', html).group(1).replace("&amp;", "&")
    image = world.client.get(thumbnail.replace("http://sdfleet.test:8080", ""))
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    tampered = world.client.get(thumbnail.replace("http://sdfleet.test:8080", "").replace("signature=",
                                                                                         "signature=0"))
    assert tampered.status_code in (403, 404)
    # One-click unsubscribe (RFC 8058): a POST to the link; later events are not mailed.
    token = httpx.URL(unsubscribe).params["token"]
    assert world.client.post(f"/notifications/unsubscribe?token={token}").status_code == 200
    assert world.client.get(f"/api/v1/notifications/subscriptions/{sub['id']}",
                            headers=headers).json()["status"] == "disabled"
    world.finish_job(user_id, prompt="after unsubscribing")
    world.settled()
    assert world.deliveries(headers, sub["id"])[0]["event_type"] == "inference.succeeded"
    assert len(world.deliveries(headers, sub["id"])) == 2  # confirmation + the one job mail: nothing queued
    assert len(world.smtp.to(address)) == 2


def test_confirmation_links_are_signed_and_expire(world: World):
    for token in ["", "abc", "x.y", "eyJ9.AAAA"]:
        r = world.client.post("/api/v1/notifications/confirm", json={"token": token})
        assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "token", (token, r.text)
    _, headers = world.user()
    address = f"{uuid.uuid4().hex[:8]}@example.com"
    sub = world.subscribe(headers, channel="email", address=address)
    signer = world.api.runtime.services.notifications._signer
    expired = signer.confirmation_token(sub["id"], ttl=-1)
    r = world.client.post("/api/v1/notifications/confirm", json={"token": expired})
    assert r.status_code == 422 and r.json()["error"]["details"]["reason"] == "expired"
    # An unsubscribe token does not confirm (purpose-bound), a resend mails a fresh link.
    r = world.client.post("/api/v1/notifications/confirm", json={"token": signer.unsubscribe_token(sub["id"])})
    assert r.status_code == 422
    assert world.client.post(f"/api/v1/notifications/subscriptions/{sub['id']}/resend-confirmation",
                             headers=headers).status_code == 202
    world.smtp.wait_for(address, 2)


def test_webhook_failing_three_times_is_accepted_on_the_fourth_attempt(world: World):
    user_id, headers = world.user()
    path = f"/flaky-{user_id}"
    sub = world.webhook(headers, path, Behaviour(fail_first=3))
    job_id = world.finish_job(user_id, prompt="retry me")
    [accepted] = wait_until(lambda: world.receiver.accepted(path), what="the fourth attempt")
    calls = world.receiver.at(path)
    assert [c.answered for c in calls] == [503, 503, 503, 200]
    assert len({c.webhook_id for c in calls}) == 1, "every attempt carries the event's webhook-id"
    assert all(c.verified for c in calls), "signatures verify with the library and by hand"
    payload = accepted.payload
    assert payload["type"] == "inference.succeeded" and payload["data"]["job_id"] == job_id
    assert payload["data"]["prompt"] == "retry me" and payload["data"]["status"] == "succeeded"
    assert payload["data"]["outputs"][0]["download_url"].startswith("http://sdfleet.test:8080/api/v1/objects/")
    assert "key" not in payload["data"]["outputs"][0] and "webhook" not in payload["data"]
    [delivery] = wait_until(lambda: [d for d in world.deliveries(headers, sub["id"]) if d["status"] == "succeeded"],
                            what="the delivery log")
    assert delivery["attempts"] == 4 and delivery["last_status_code"] == 200 and delivery["next_attempt_at"] is None
    detail = world.client.get(f"/api/v1/notifications/deliveries/{delivery['id']}", headers=headers).json()
    assert [a["status_code"] for a in detail["history"]] == [503, 503, 503, 200]
    assert all(a["latency_ms"] >= 0 for a in detail["history"])


def test_never_accepting_receiver_is_disabled_and_the_owner_is_mailed(world: World):
    user_id, headers = world.user()
    address = f"{uuid.uuid4().hex[:8]}@example.com"
    world.subscribe(headers, channel="email", address=address, events=["upload.registered"])
    world.confirm(address)
    path = f"/never-{user_id}"
    sub = world.webhook(headers, path, Behaviour(never_accept=True))
    world.finish_job(user_id)
    world.finish_job(user_id)
    disabled = wait_until(lambda: (lambda s: s if s["status"] == "disabled" else None)(
        world.client.get(f"/api/v1/notifications/subscriptions/{sub['id']}", headers=headers).json()),
        what="the subscription to be disabled")
    assert "2 deliveries in a row failed" in disabled["disabled_reason"]
    assert len(world.receiver.at(path)) == 2 * 5  # both deliveries used every attempt of the schedule
    [_, notice] = world.smtp.wait_for(address, 2)
    assert "disabled" in notice["Subject"] and world.receiver.url(path) in body_of(notice, "plain")
    # Re-enabling resets the count; a test event then goes out again.
    world.receiver.behaviours[path].never_accept = False
    r = world.client.patch(f"/api/v1/notifications/subscriptions/{sub['id']}", headers=headers,
                           json={"enabled": True})
    assert r.json()["status"] == "active" and r.json()["consecutive_failures"] == 0
    assert world.client.post(f"/api/v1/notifications/subscriptions/{sub['id']}/test",
                             headers=headers).status_code == 202
    wait_until(lambda: world.receiver.accepted(path), what="the test event after re-enabling")


def test_test_event_redeliver_and_one_off_job_webhook(world: World):
    user_id, headers = world.user()
    path = f"/plain-{user_id}"
    sub = world.webhook(headers, path)
    r = world.client.post(f"/api/v1/notifications/subscriptions/{sub['id']}/test", headers=headers)
    assert r.status_code == 202 and r.json()["event_type"] == "notification.test"
    [first] = wait_until(lambda: world.receiver.accepted(path), what="the test event")
    assert first.payload["type"] == "notification.test" and first.verified
    r = world.client.post(f"/api/v1/notifications/deliveries/{r.json()['id']}/redeliver", headers=headers)
    assert r.status_code == 202
    wait_until(lambda: len(world.receiver.accepted(path)) == 2, what="the redelivery")
    assert {c.webhook_id for c in world.receiver.accepted(path)} == {first.webhook_id}
    # A job's one-off webhook is signed with the user's job-webhook secret.
    job_path = f"/job-{user_id}"
    world.receiver.secrets[job_path] = world.client.get("/api/v1/notifications/job-webhook",
                                                        headers=headers).json()["secret"]
    job_id = world.finish_job(user_id, fail=True, webhook=world.receiver.url(job_path))
    [hook] = wait_until(lambda: world.receiver.accepted(job_path), what="the one-off job webhook")
    assert hook.verified and hook.payload["type"] == "inference.failed"
    assert hook.payload["data"]["job_id"] == job_id and hook.payload["data"]["error"]["message"] == "out of memory"
    log = world.client.get("/api/v1/notifications/job-webhook/deliveries", headers=headers).json()["items"]
    assert log[0]["target"] == world.receiver.url(job_path)


def test_bad_input_is_refused_by_name(world: World):
    _, headers = world.user()

    def refused(body, field, status=422):
        r = world.client.post("/api/v1/notifications/subscriptions", headers=headers, json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["details"].get("field") == field, (body, r.text)
        return r.json()["error"]["message"]

    for address in ["not-an-address", "a@b", "x@example.com\r\nBcc: victim@example.com", "a b@example.com",
                    "@example.com", "a" * 65 + "@example.com"]:
        refused({"channel": "email", "address": address}, "address")
    for url in ["http://localhost/hook", "http://127.0.0.1/hook", "http://[::1]:8080/", "http://2130706433/",
                "http://169.254.169.254/latest/meta-data", "http://metadata.google.internal/", "ftp://example.com/",
                "http://10.0.0.5/hook"]:
        assert "url refused" in refused({"channel": "webhook", "url": url}, "url")
    for secret in ["whsec_c2hvcnQ=", "not-a-secret", "whsec_" + "!" * 40]:
        refused({"channel": "webhook", "url": "https://hooks.example.com/x", "secret": secret}, "secret")
    refused({"channel": "webhook", "url": "https://hooks.example.com/x", "events": ["inference.exploded"]}, "events")
    refused({"channel": "webhook", "url": "https://hooks.example.com/x", "min_duration_seconds": -1},
            "min_duration_seconds")
    r = world.client.post("/api/v1/notifications/subscriptions", headers=headers,
                          json={"channel": "webhook", "url": "https://hooks.example.com/x", "scope": "all"})
    assert r.status_code == 403  # everyone's events need user:all
    r = world.client.post("/api/v1/inferences", headers=headers,
                          json={"task": "txt2img", "params": {"prompt": "x"}, "webhook": "http://169.254.169.254/"})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "webhook"


def test_hanging_receiver_times_out_and_a_100_mb_answer_is_read_capped(world: World):
    user_id, headers = world.user()
    hang = world.webhook(headers, f"/hang-{user_id}", Behaviour(hang_seconds=3, fail_first=1))
    huge = world.webhook(headers, f"/huge-{user_id}", Behaviour(huge_body_bytes=100 * 1024 * 1024))
    world.client.post(f"/api/v1/notifications/subscriptions/{hang['id']}/test", headers=headers)
    world.client.post(f"/api/v1/notifications/subscriptions/{huge['id']}/test", headers=headers)
    [done] = wait_until(lambda: [d for d in world.deliveries(headers, huge["id"]) if d["status"] == "succeeded"],
                        what="the 100 MB answer's delivery")
    assert done["last_status_code"] == 200 and done["attempts"] == 1
    behaviour = world.receiver.behaviours[f"/huge-{user_id}"]
    wait_until(lambda: behaviour.finished, what="the receiver to notice the closed connection")
    assert behaviour.calls == 1 and behaviour.sent < 100 * 1024 * 1024, "the answer was not read to its end"
    first = wait_until(lambda: [d for d in world.deliveries(headers, hang["id"]) if d["attempts"] >= 1],
                       what="the hanging receiver's first attempt")[0]
    detail = world.client.get(f"/api/v1/notifications/deliveries/{first['id']}", headers=headers).json()
    assert "no answer within 1 s" in detail["history"][0]["error"]
    # Nothing is lost: the retry after the timeout is sent (the receiver hangs every time: each one times out).
    wait_until(lambda: len(world.receiver.at(f"/hang-{user_id}")) >= 2, what="the retry after a timeout")


def test_a_registered_upload_is_announced_to_its_uploader(world: World):
    import hashlib

    from tests.integration.checkpoints.conftest import upload_file
    from tests.integration.checkpoints.model_bytes import lora_bytes

    headers = world.api.admin()
    path = f"/uploads-{uuid.uuid4().hex[:8]}"
    world.webhook(headers, path, events=["upload.registered"])
    data = lora_bytes()
    name = f"style-{uuid.uuid4().hex[:8]}.safetensors"
    r = upload_file(world.api, headers, data, filename=name, sha256=hashlib.sha256(data).hexdigest())
    assert r.status_code == 200, r.text
    [hook] = wait_until(lambda: world.receiver.accepted(path), what="the upload.registered webhook")
    assert hook.verified and hook.payload["type"] == "upload.registered"
    assert hook.payload["data"]["name"] == name and hook.payload["data"]["sha256"] == hashlib.sha256(data).hexdigest()
