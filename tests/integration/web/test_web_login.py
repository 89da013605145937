"""Login, logout, CSRF and open-redirect rules of the web UI (no browser)."""

from __future__ import annotations

import pytest

from sdfleet.api.web.login import safe_next
from tests.fixtures.runtime import ADMIN_PASSWORD


def sign_in(client, *, next_path: str = "/", password: str = ADMIN_PASSWORD):
    client.get("/login")
    csrf = client.cookies.get("sdfleet_csrf")
    return client.post("/login", data={"username": "admin", "password": password, "csrf": csrf, "next": next_path},
                       follow_redirects=False)


@pytest.mark.parametrize("value", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "http:/x",
                                   "javascript:alert(1)", "", None, "/a\r\nLocation: //evil", "evil"])
def test_next_outside_this_site_becomes_the_root(value):
    assert safe_next(value) == "/"


@pytest.mark.parametrize("value", ["/gallery", "/comfy/", "/gallery?status=failed", "/%2F%2Fevil"])
def test_local_next_is_kept(value):
    assert safe_next(value) == value


@pytest.mark.parametrize("path", ["/", "/gallery", "/models", "/endpoints", "/settings"])
def test_pages_send_visitors_to_login_with_next(api, path):
    r = api.client.get(path, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/login?next={path}"


def test_login_sets_an_httponly_lax_session_cookie_and_a_readable_csrf_cookie(api):
    r = sign_in(api.client, next_path="/comfy/")
    assert r.status_code == 303 and r.headers["location"] == "/comfy/"
    cookies = {c.split("=", 1)[0]: c.lower() for c in r.headers.get_list("set-cookie")}
    assert "httponly" in cookies["sdfleet_session"] and "samesite=lax" in cookies["sdfleet_session"]
    assert "httponly" not in cookies["sdfleet_csrf"]
    assert "secure" not in cookies["sdfleet_session"]  # plain http test server
    assert api.client.get("/gallery").status_code == 200


def test_login_to_another_host_lands_on_the_root(api):
    r = sign_in(api.client, next_path="//evil.example/")
    assert r.headers["location"] == "/"


def test_wrong_password_and_missing_csrf_are_refused(api):
    r = sign_in(api.client, password="wrong-password")
    assert r.status_code == 401 and "Wrong username or password" in r.text
    assert "sdfleet_session" not in api.client.cookies
    r = api.client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf": "forged"},
                        follow_redirects=False)
    assert r.status_code == 403 and "sdfleet_session" not in api.client.cookies


def test_unsafe_api_calls_with_the_cookie_need_the_csrf_header(api):
    sign_in(api.client)
    body = {"name": "k1"}
    assert api.client.post("/api/v1/api-keys", json=body).status_code == 403
    assert api.client.post("/api/v1/api-keys", json=body, headers={"X-CSRF-Token": "nope"}).status_code == 403
    csrf = api.client.cookies.get("sdfleet_csrf")
    assert api.client.post("/api/v1/api-keys", json=body, headers={"X-CSRF-Token": csrf}).status_code == 201


def test_logout_needs_the_csrf_token_and_revokes_the_session(api):
    sign_in(api.client)
    session = api.client.cookies.get("sdfleet_session")
    assert api.client.post("/logout", data={"csrf": "forged"}, follow_redirects=False).status_code == 403
    assert api.client.get("/api/v1/me").status_code == 200
    csrf = api.client.cookies.get("sdfleet_csrf")
    r = api.client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {session}"}).status_code == 401


def test_a_page_the_role_does_not_allow_is_403_and_not_in_the_navigation(api):
    role = api.make_role(permissions=["inference:all"])
    user = api.make_user(roles=[role])
    api.client.get("/login")
    api.client.post("/login", data={"username": user["username"], "password": "user-password-1",
                                    "csrf": api.client.cookies.get("sdfleet_csrf")})
    page = api.client.get("/")
    assert page.status_code == 200 and 'href="/models"' not in page.text and 'href="/endpoints"' not in page.text
    assert api.client.get("/models").status_code == 403
    assert api.client.get("/endpoints").status_code == 403


def test_https_public_url_makes_cookies_secure(runtime):
    from fastapi.testclient import TestClient

    from sdfleet.api.app import create_app

    app = create_app(runtime.services, public_url="https://fleet.example")
    with TestClient(app) as client:
        r = sign_in(client)
    assert all("secure" in c.lower() for c in r.headers.get_list("set-cookie"))
