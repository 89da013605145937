"""Security headers on pages and API answers, and ComfyUI user data that can never run as a page of this origin
(issue 11, items 9 and 10). The browser suite checks that every page works under its policy."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from sdfleet.api.comfy.mount import create_comfy_app


@pytest.fixture
def comfy_port(api):
    return TestClient(create_comfy_app(api.runtime.services, login_url="/login"))


def _directives(policy: str) -> dict[str, str]:
    return {part.split()[0]: part.strip() for part in policy.split(";") if part.strip()}


@pytest.mark.parametrize("path", ["/login", "/", "/gallery", "/models", "/settings", "/endpoints"])
def test_sdfleet_pages_get_a_strict_policy(api, path):
    r = api.client.get(path, headers=api.admin())
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), (path, r.status_code)
    policy = _directives(r.headers["content-security-policy"])
    assert policy["script-src"] == "script-src 'self'" and policy["style-src"] == "style-src 'self'"
    assert policy["frame-ancestors"] == "frame-ancestors 'none'" and policy["object-src"] == "object-src 'none'"
    assert "unsafe" not in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "same-origin"


def test_the_comfy_frontend_gets_its_own_policy_on_both_listeners(api, comfy_port):
    for client, path in ((api.client, "/comfy/"), (comfy_port, "/")):
        r = client.get(path, headers=api.admin())
        assert r.status_code == 200 and "<html" in r.text.lower(), path
        policy = _directives(r.headers["content-security-policy"])
        assert policy["script-src"].startswith("script-src 'self' 'wasm-unsafe-eval' 'sha256-"), policy
        assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
        assert policy["frame-ancestors"] == "frame-ancestors 'self'" and r.headers["x-frame-options"] == "SAMEORIGIN"
        assert r.headers["x-content-type-options"] == "nosniff"


def test_api_answers_are_nosniff(api, comfy_port):
    for client, path in ((api.client, "/api/v1/health"), (api.client, "/api/v1/users/me"),
                         (comfy_port, "/system_stats")):
        r = client.get(path, headers=api.admin())
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert "content-security-policy" not in r.headers or r.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(("name", "media", "attachment"), [
    ("evil.html", "application/octet-stream", True), ("x.svg", "application/octet-stream", True),
    ("x.js", "application/octet-stream", True), ("workflows/a.json", "application/json", False),
    ("user.css", "text/css", True), ("notes.txt", "text/plain", True), ("noext", "application/octet-stream", True),
])
def test_user_data_is_never_served_as_a_page(api, comfy_port, name, media, attachment):
    headers = api.admin()
    for client, prefix in ((api.client, "/comfy/api"), (comfy_port, "")):
        body = b"<script>alert(document.cookie)</script>" if not name.endswith(".json") else b'{"a": 1}'
        assert client.post(f"{prefix}/userdata/{name.replace('/', '%2F')}", headers=headers,
                           content=body).status_code == 200
        r = client.get(f"{prefix}/userdata/{name.replace('/', '%2F')}", headers=headers)
        assert r.status_code == 200 and r.content == body, (prefix, name)
        assert r.headers["content-type"].split(";")[0] == media, (prefix, name, r.headers["content-type"])
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-security-policy"].startswith("default-src 'none'; sandbox")
        assert r.headers.get("content-disposition", "").startswith("attachment") == attachment, (prefix, name)
