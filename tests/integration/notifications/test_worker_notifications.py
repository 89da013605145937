"""A real generation: a job submitted with a one-off `webhook`, run by a worker process on the demo model;
its webhook (signed with the job-webhook secret), a subscription's webhook and the mail all carry the job,
and the mail's image link serves the PNG the worker made."""

from __future__ import annotations

import io
import re

import httpx
import pytest
from PIL import Image

from tests.fixtures.live import start_fleet
from tests.fixtures.notifications import SmtpSink, WebhookReceiver, body_of, wait_until

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


def test_a_finished_generation_is_mailed_and_posted(tmp_path, demo_files):
    smtp, receiver = SmtpSink().start(), WebhookReceiver().start()
    fleet = start_fleet(tmp_path, demo_files, smtp_url=smtp.url, mail_from="sdfleet@fleet.example",
                        webhook_allowed_hosts=[f"127.0.0.1:{receiver.port}"])
    try:
        admin = fleet.login()
        api = httpx.Client(base_url=fleet.url, headers=admin, timeout=30)
        api.post("/api/v1/notifications/subscriptions", json={"channel": "email", "address": "lead@example.com"})
        [confirmation] = smtp.wait_for("lead@example.com")
        token = re.search(r"token=(\S+)", body_of(confirmation, "plain")).group(1)
        assert api.post("/api/v1/notifications/confirm", json={"token": token}).json()["status"] == "active"
        sub = api.post("/api/v1/notifications/subscriptions",
                       json={"channel": "webhook", "url": receiver.url("/all"), "events": ["inference.succeeded"]})
        receiver.secrets["/all"] = sub.json()["secret"]
        receiver.secrets["/job"] = api.get("/api/v1/notifications/job-webhook").json()["secret"]

        fleet.start_worker("a")
        body = {"task": "txt2img", "webhook": receiver.url("/job"),
                "params": {"prompt": "a lighthouse at dusk", "steps": 2, "width": 64, "height": 64, "seed": 7}}
        job_id = api.post("/api/v1/inferences", json=body).json()["id"]
        assert fleet.wait(admin, job_id)["status"] == "succeeded"

        [hook] = wait_until(lambda: receiver.accepted("/job"), timeout=60, what="the job's own webhook")
        [posted] = wait_until(lambda: receiver.accepted("/all"), timeout=60, what="the subscription's webhook")
        assert hook.verified and posted.verified and hook.webhook_id == posted.webhook_id
        data = hook.payload["data"]
        assert hook.payload["type"] == "inference.succeeded" and data["job_id"] == job_id
        assert data["prompt"] == "a lighthouse at dusk" and data["model"] == "demo-sd15.safetensors"
        assert data["duration_seconds"] > 0 and data["outputs"][0]["width"] == 64

        [_, mail] = smtp.wait_for("lead@example.com", 2)
        assert mail["Subject"] == "[sdfleet] Your image is ready: “a lighthouse at dusk”"
        link = re.search(r'<img src="([^"]+)"', body_of(mail, "html")).group(1).replace("&amp;", "&")
        image = httpx.get(fleet.url + link[link.index("/api/v1/objects/"):])  # no login: the link is signed
        assert image.status_code == 200
        png = Image.open(io.BytesIO(image.content))
        assert png.size == (64, 64) and "Seed: 7" in png.info["parameters"]
    finally:
        fleet.stop()
        smtp.stop()
        receiver.stop()
