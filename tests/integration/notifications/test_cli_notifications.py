"""`sdfleet notifications test|list` against a live server and a real receiver."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from sdfleet.cli import app
from tests.fixtures.live import LiveServer
from tests.fixtures.notifications import Behaviour, WebhookReceiver
from tests.fixtures.runtime import ADMIN_PASSWORD, make_runtime

pytestmark = pytest.mark.timeout(120)


def test_cli_sends_a_test_event_and_reports_each_receiver(tmp_path):
    receiver = WebhookReceiver().start()
    receiver.behaviours = {"/ok": Behaviour(), "/down": Behaviour(never_accept=True)}
    runtime = make_runtime(tmp_path, webhook_allowed_hosts=[f"127.0.0.1:{receiver.port}"],
                           notify_retry_base_seconds=60)
    server = LiveServer(runtime).start()
    try:
        client = httpx.Client(base_url=server.url)
        token = client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['token']}"}
        key = client.post("/api/v1/api-keys", headers=headers, json={"name": "cli"}).json()["key"]
        ids = {}
        for path in ("/ok", "/down"):
            sub = client.post("/api/v1/notifications/subscriptions", headers=headers,
                              json={"channel": "webhook", "url": receiver.url(path)}).json()
            receiver.secrets[path], ids[path] = sub["secret"], sub["id"]
        env = {"SDFLEET_API_KEY": key, "SDFLEET_SERVER": server.url, "COLUMNS": "200"}
        runner = CliRunner()

        result = runner.invoke(app, ["notifications", "test", "--subscription", ids["/ok"]], env=env)
        assert result.exit_code == 0, result.output
        assert "succeeded" in result.output and "200" in result.output
        assert receiver.accepted("/ok")[0].verified

        result = runner.invoke(app, ["notifications", "test"], env=env)
        assert result.exit_code == 1, result.output  # one receiver refused
        assert "answered 503" in result.output and "succeeded" in result.output

        listed = runner.invoke(app, ["notifications", "list"], env=env)
        assert listed.exit_code == 0 and ids["/ok"] in listed.output and ids["/down"] in listed.output
        missing = runner.invoke(app, ["notifications", "test", "--subscription", "nope"], env=env)
        assert missing.exit_code == 1
    finally:
        server.stop()
        runtime.database.dispose()
        receiver.stop()
