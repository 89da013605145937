"""Issue 11, items 4, 6 and 11 (Basic): own password changes need the current password, the login limiter
counts failures only and is shared by API servers, X-Forwarded-For only from trusted proxies, Basic takes
API keys only."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from sdfleet.bootstrap import build_app
from tests.fixtures.runtime import ADMIN_PASSWORD, Api, make_runtime

PROXY = "10.0.0.1"


def _key(api: Api, headers: dict) -> str:
    r = api.client.post("/api/v1/api-keys", headers=headers, json={"name": "script"})
    assert r.status_code == 201, r.text
    return r.json()["key"]


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _basic(username: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()}


def _patch_self(api: Api, username: str, headers: dict, body: dict):
    return api.client.patch(f"/api/v1/users/{username}", headers=headers, json=body)


# Item 4 -----------------------------------------------------------------------------------------


def test_api_key_alone_cannot_change_its_users_password(api):
    user = api.make_user(roles=["artist"], password="old-password-1")
    key = _bearer(_key(api, user["headers"]))
    r = _patch_self(api, user["username"], key, {"password": "stolen-password"})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "current_password"
    r = _patch_self(api, user["username"], key, {"password": "stolen-password", "current_password": "guess-1234"})
    assert r.status_code == 403 and r.json()["error"]["details"]["field"] == "current_password"
    api.login(user["username"], "old-password-1")  # unchanged
    # The same session or key with the current password may change it.
    r = _patch_self(api, user["username"], key, {"password": "new-password-1", "current_password": "old-password-1"})
    assert r.status_code == 200
    api.login(user["username"], "new-password-1")


def test_password_change_can_revoke_api_keys_and_ends_other_sessions(api):
    user = api.make_user(roles=["artist"], password="old-password-1")
    key = _bearer(_key(api, user["headers"]))
    other_key = _bearer(_key(api, user["headers"]))
    assert _patch_self(api, user["username"], user["headers"], {"revoke_api_keys": True}).status_code == 422
    r = _patch_self(api, user["username"], key, {"password": "new-password-1", "current_password": "old-password-1",
                                                 "revoke_api_keys": True})
    assert r.status_code == 200, r.text
    for headers in (key, other_key, user["headers"]):  # changed through a key: every session ends too
        assert api.client.get("/api/v1/me", headers=headers).status_code == 401


def test_admin_resets_another_users_password_without_theirs(api):
    user = api.make_user(roles=["artist"], password="old-password-1")
    key = _bearer(_key(api, user["headers"]))
    r = api.client.patch(f"/api/v1/users/{user['username']}", headers=api.admin(), json={"password": "reset-pass-1"})
    assert r.status_code == 200, r.text
    assert api.client.get("/api/v1/me", headers=user["headers"]).status_code == 401  # all their sessions
    assert api.client.get("/api/v1/me", headers=key).status_code == 200  # keys stay unless asked
    api.login(user["username"], "reset-pass-1")


def test_wrong_current_passwords_count_as_failed_logins(tmp_path):
    runtime = make_runtime(tmp_path, login_attempts_per_user=3)
    with TestClient(build_app(runtime, local_workers=0)) as client:
        api = Api(client=client, runtime=runtime)
        user = api.make_user(roles=["artist"], password="right-password-1")
        codes = [_patch_self(api, user["username"], user["headers"],
                             {"password": "new-password-1", "current_password": f"guess-{i}-pass"}).status_code
                 for i in range(4)]
        assert codes == [403, 403, 403, 429]
        r = client.post("/api/v1/auth/login", json={"username": user["username"], "password": "right-password-1"})
        assert r.status_code == 429  # the same client is held back from guessing through login too
    runtime.database.dispose()


# Item 11: Basic authentication takes API keys only ------------------------------------------------


def test_basic_auth_refuses_session_tokens(api):
    user = api.make_user(roles=["artist"])
    session = user["headers"]["Authorization"].removeprefix("Bearer ")
    r = api.client.get("/api/v1/me", headers=_basic(user["username"], session))
    assert r.status_code == 401 and "api_key" in r.json()["error"]["message"]
    assert api.client.get("/sdapi/v1/options", headers=_basic(user["username"], session)).status_code == 401
    key = _key(api, user["headers"])
    r = api.client.get("/api/v1/me", headers=_basic(user["username"], key))
    assert r.status_code == 200 and r.json()["credential"] == "api_key"


# Item 6: the login limiter ----------------------------------------------------------------------


@pytest.fixture
def proxied(tmp_path):
    """An app behind a trusted proxy at 10.0.0.1, small limits: per client 3, per address 5, per user 5."""
    runtime = make_runtime(tmp_path, login_attempts_per_user=3, login_attempts_per_address=5,
                           login_user_backoff_after=5, trusted_proxies=f"{PROXY}, 192.168.0.0/16")
    with TestClient(build_app(runtime, local_workers=0), client=(PROXY, 50000)) as client:
        api = Api(client=client, runtime=runtime)
        api.make_user(roles=["artist"], username="owner", password="owner-password-1")
        yield api
    runtime.database.dispose()


def _login(api: Api, address: str, password: str, username: str = "owner") -> int:
    r = api.client.post("/api/v1/auth/login", json={"username": username, "password": password},
                        headers={"X-Forwarded-For": address})
    assert r.status_code != 429 or int(r.headers["retry-after"]) > 0
    return r.status_code


def test_successful_logins_never_count(proxied):
    assert [_login(proxied, "203.0.113.9", "owner-password-1") for _ in range(12)] == [200] * 12
    assert [_login(proxied, "203.0.113.9", "wrong-password") for _ in range(4)] == [401, 401, 401, 429]


def test_owner_signs_in_from_a_clean_client_while_others_guess(proxied):
    for bot in ("198.51.100.1", "198.51.100.2"):
        assert [_login(proxied, bot, "guess-password") for _ in range(3)] == [401, 401, 401]
        assert _login(proxied, bot, "guess-password") == 429  # per (username, address)
    assert _login(proxied, "198.51.100.3", "guess-password") == 401  # a new guesser gets one try …
    assert _login(proxied, "198.51.100.3", "guess-password") == 429  # … then the username's backoff holds it
    assert _login(proxied, "198.51.100.1", "owner-password-1") == 429  # the right password from a bot: no
    assert _login(proxied, "203.0.113.7", "owner-password-1") == 200  # the owner's own client: yes


def test_address_limit_counts_failures_across_usernames(proxied):
    codes = [_login(proxied, "203.0.113.50", "wrong-password", username=f"nobody{i}") for i in range(6)]
    assert codes == [401] * 5 + [429]
    assert _login(proxied, "203.0.113.51", "owner-password-1") == 200


def test_forwarded_for_is_believed_only_from_trusted_proxies(proxied, tmp_path_factory):
    admin = proxied.admin()
    # Trusted: the client is the right-most untrusted hop (192.168.0.0/16 is a trusted inner proxy).
    assert _login(proxied, "203.0.113.60, 192.168.1.1", "owner-password-1") == 200
    events = proxied.client.get("/api/v1/audit?action=auth.login&limit=1", headers=admin).json()["items"]
    assert events[0]["address"] == "203.0.113.60"
    # A client cannot pose as another address by prepending its own entries.
    assert _login(proxied, "1.1.1.1, 203.0.113.61", "owner-password-1") == 200
    events = proxied.client.get("/api/v1/audit?action=auth.login&limit=1", headers=admin).json()["items"]
    assert events[0]["address"] == "203.0.113.61"
    # Not trusted (the default: no proxies): the header is ignored and failures pile up on the peer.
    runtime = make_runtime(tmp_path_factory.mktemp("direct"), login_attempts_per_user=3)
    with TestClient(build_app(runtime, local_workers=0), client=("127.0.0.1", 50000)) as client:
        api = Api(client=client, runtime=runtime)
        admin = api.admin()
        codes = [_login(api, f"203.0.113.{i}", "wrong-password", username="admin") for i in range(4)]
        assert codes == [401, 401, 401, 429]
        events = client.get("/api/v1/audit?action=auth.login_failed", headers=admin).json()["items"]
        assert {e["address"] for e in events} == {"127.0.0.1"}
    runtime.database.dispose()


def test_limiter_is_shared_by_api_servers_on_one_database(database_url, tmp_path):
    """Two API servers on one database: failures seen by one hold the client back at the other."""
    first = make_runtime(tmp_path / "a", database_url=database_url, login_attempts_per_user=3)
    second = make_runtime(tmp_path / "b", database_url=database_url, login_attempts_per_user=3)
    try:
        with TestClient(build_app(first, local_workers=0)) as a, TestClient(build_app(second, local_workers=0)) as b:
            body = {"username": "admin", "password": "wrong-password"}
            assert [a.post("/api/v1/auth/login", json=body).status_code for _ in range(3)] == [401] * 3
            r = b.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
            assert r.status_code == 429
    finally:
        first.database.dispose()
        second.database.dispose()
