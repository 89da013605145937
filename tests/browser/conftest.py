"""Browser-test fixtures shared per module: one live server, one signed-in page (tests stay lean on 2 cores)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.web_session import sign_in
from tests.fixtures.browser import assert_no_csp_violations
from tests.fixtures.live import Fleet, start_fleet


@pytest.fixture(scope="module")
def web(tmp_path_factory, demo_files) -> Iterator[Fleet]:
    """A live server (SQLite, local objects, demo models) for every test of a module; no workers."""
    fleet = start_fleet(tmp_path_factory.mktemp("web"), demo_files)
    yield fleet
    fleet.stop()


@pytest.fixture(scope="module")
def admin_page(browser, web) -> Iterator:
    """One browser context signed in as admin for the module (1280×800); tests navigate where they need."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda msg: page.console_errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, web.url)
    yield page
    context.close()
    assert_no_csp_violations(page)


@pytest.fixture(scope="module")
def admin_headers(web) -> dict[str, str]:
    return web.login()
