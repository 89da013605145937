"""The Notifications tab in a real Chromium: add an address and confirm it from the mail, add a webhook,
send a test event and watch it arrive (signed) in the delivery log."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.web_session import sign_in
from tests.fixtures.browser import screenshot
from tests.fixtures.live import LiveServer
from tests.fixtures.notifications import SmtpSink, WebhookReceiver, body_of, wait_until
from tests.fixtures.runtime import make_runtime

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def notifying_server(tmp_path):
    smtp, receiver = SmtpSink().start(), WebhookReceiver().start()
    runtime = make_runtime(tmp_path, smtp_url=smtp.url, webhook_allowed_hosts=[f"127.0.0.1:{receiver.port}"],
                           notify_retry_base_seconds=0.05, notify_retry_max_seconds=0.2)
    server = LiveServer(runtime).start()
    yield server, smtp, receiver
    server.stop()
    runtime.database.dispose()
    smtp.stop()
    receiver.stop()


def test_notifications_tab_confirms_an_address_and_delivers_a_signed_test_webhook(notifying_server, page):
    server, smtp, receiver = notifying_server
    sign_in(page, server.url, path="/settings")
    page.get_by_role("tab", name="Notifications").click()
    panel = page.locator("#panel-notifications")
    expect(panel.get_by_label("inference.succeeded").first).to_be_visible()

    # 1. An address: pending until the link in its mail is followed.
    page.get_by_label("Address").fill("artist@example.com")
    panel.locator("#mail-events").get_by_label("inference.failed").check()
    page.get_by_role("button", name="Add address").click()
    expect(page.locator("#mail-list")).to_contain_text("awaiting confirmation")
    [mail] = smtp.wait_for("artist@example.com")
    path = re.search(r"http://\S+?(/notifications/confirm\?token=\S+)", body_of(mail, "plain")).group(1)
    page.goto(server.url + path)  # the mail links to the configured public URL; this server's port is random
    page.get_by_role("button", name="Confirm this address").click()
    expect(page.get_by_role("status")).to_contain_text("artist@example.com now receives your notifications")
    page.goto(f"{server.url}/settings#notifications")
    expect(page.locator("#mail-list")).to_contain_text("active")
    expect(page.locator("#mail-list")).to_contain_text("inference.failed")

    # 2. A webhook: its secret is shown once; a test event arrives signed and shows in the log.
    page.get_by_label("URL").fill(receiver.url("/browser"))
    page.get_by_role("button", name="Add webhook").click()
    secret = page.locator("#hook-secret-value")
    expect(secret).to_contain_text("whsec_")
    receiver.secrets["/browser"] = secret.inner_text().strip()
    row = page.locator("#hook-list tr", has_text=receiver.url("/browser"))
    row.get_by_role("button", name="Send test").click()
    [received] = wait_until(lambda: receiver.accepted("/browser"), what="the test webhook")
    assert received.verified and received.payload["type"] == "notification.test"
    log = page.locator("#log-list")

    def logged() -> bool:
        page.locator("#log-refresh").click()
        return "succeeded" in log.inner_text()

    wait_until(logged, what="the delivery log to show the delivery")
    expect(log).to_contain_text("notification.test")
    expect(log).to_contain_text("200")
    expect(page.locator("#job-secret")).to_contain_text("whsec_")
    screenshot(page, "web-settings-notifications")
    assert not page.console_errors, page.console_errors
