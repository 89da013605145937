"""The seed's RBAC rules, enforced in services and visible through the API."""

from datetime import UTC, datetime, timedelta


def test_nobody_grants_what_they_do_not_hold(api):
    role_admin = api.make_role(permissions=["role:all", "user:all", "inference:all"])
    manager = api.make_user(roles=[role_admin])["headers"]
    r = api.client.post("/api/v1/roles", headers=manager, json={"name": "big", "permissions": ["endpoint:all"]})
    assert r.status_code == 403 and "endpoint:all" in r.json()["error"]["message"]
    r = api.client.post("/api/v1/users", headers=manager,
                        json={"username": "sneaky", "password": "password-123", "roles": ["admin"]})
    assert r.status_code == 403
    r = api.client.post("/api/v1/users", headers=manager,
                        json={"username": "fine", "password": "password-123", "roles": ["artist"]})
    assert r.status_code == 201


def test_last_admin_cannot_be_removed_or_delete_themselves(api):
    admin = api.admin()
    r = api.client.patch("/api/v1/users/admin", headers=admin, json={"roles": ["artist"]})
    assert r.status_code == 409 and "last" in r.json()["error"]["message"]
    assert api.client.patch("/api/v1/users/admin", headers=admin, json={"disabled": True}).status_code == 409
    assert api.client.delete("/api/v1/users/admin", headers=admin).status_code == 409
    second = api.make_user(roles=["admin"])
    # With two admins, one may demote the other — but still not delete themselves.
    r = api.client.patch(f"/api/v1/users/{second['username']}", headers=admin, json={"roles": ["artist"]})
    assert r.status_code == 200 and r.json()["roles"] == ["artist"]
    assert api.client.delete("/api/v1/users/admin", headers=admin).status_code == 409


def test_admin_role_cannot_be_deleted_or_reduced(api):
    admin = api.admin()
    assert api.client.delete("/api/v1/roles/admin", headers=admin).status_code == 409
    r = api.client.patch("/api/v1/roles/admin", headers=admin, json={"permissions": ["inference:all"]})
    assert r.status_code == 409


def test_deleting_role_removes_it_from_users(api):
    role = api.make_role(permissions=["checkpoint:all"])
    user = api.make_user(roles=[role, "artist"])
    admin = api.admin()
    assert api.client.delete(f"/api/v1/roles/{role}", headers=admin).status_code == 204
    r = api.client.get(f"/api/v1/users/{user['username']}", headers=admin)
    assert r.json()["roles"] == ["artist"]
    assert "checkpoint:all" not in api.client.get("/api/v1/me", headers=user["headers"]).json()["permissions"]


def test_password_change_ends_other_sessions(api):
    user = api.make_user(roles=["artist"], password="old-password-1")
    other_session = api.login(user["username"], "old-password-1")
    r = api.client.patch(f"/api/v1/users/{user['username']}", headers=user["headers"],
                         json={"password": "new-password-1", "current_password": "old-password-1"})
    assert r.status_code == 200
    assert api.client.get("/api/v1/me", headers=other_session).status_code == 401
    assert api.client.get("/api/v1/me", headers=user["headers"]).status_code == 200  # the session that changed it
    api.login(user["username"], "new-password-1")


def test_user_cannot_change_own_roles(api):
    user = api.make_user(roles=["artist"])
    r = api.client.patch(f"/api/v1/users/{user['username']}", headers=user["headers"], json={"roles": ["admin"]})
    assert r.status_code == 403


def test_login_rate_limited_per_username(api):
    api.make_user(roles=[], username="target", password="right-password")
    codes = [api.client.post("/api/v1/auth/login", json={"username": "target", "password": "wrong-pass"}).status_code
             for _ in range(11)]
    assert codes[:10] == [401] * 10
    assert codes[10] == 429
    r = api.client.post("/api/v1/auth/login", json={"username": "target", "password": "right-password"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


def test_expired_api_key_is_refused(api):
    user = api.make_user(roles=["artist"])
    soon = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
    r = api.client.post("/api/v1/api-keys", headers=user["headers"], json={"name": "short", "expires_at": soon})
    assert r.status_code == 201
    key = r.json()["key"]
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    r = api.client.post("/api/v1/api-keys", headers=user["headers"], json={"name": "old", "expires_at": past})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "expires_at"
    import time

    # Valid until it expires, then refused: wait for the state, not for a fixed time.
    deadline = time.monotonic() + 60
    while (status := api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code) == 200:
        assert time.monotonic() < deadline, "the key never expired"
        time.sleep(0.2)
    assert status == 401


def test_other_users_api_key_is_404(api):
    a = api.make_user(roles=["artist"])
    b = api.make_user(roles=["artist"])
    key_id = api.client.post("/api/v1/api-keys", headers=a["headers"], json={"name": "k"}).json()["id"]
    assert api.client.delete(f"/api/v1/api-keys/{key_id}", headers=b["headers"]).status_code == 404
    assert api.client.delete(f"/api/v1/api-keys/{key_id}", headers=a["headers"]).status_code == 204


def test_responses_carry_request_id(api):
    r = api.client.get("/api/v1/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = api.client.get("/api/v1/me")
    assert r.status_code == 401 and len(r.headers["x-request-id"]) == 16
    assert r.json()["error"]["code"] == "unauthenticated"


def test_login_rate_limited_per_client_address(tmp_path):
    from fastapi.testclient import TestClient

    from sdfleet.bootstrap import build_app
    from tests.fixtures.runtime import make_runtime

    runtime = make_runtime(tmp_path, login_attempts_per_address=3)
    with TestClient(build_app(runtime, local_workers=0)) as client:
        codes = [client.post("/api/v1/auth/login", json={"username": f"u{i}", "password": "x" * 8}).status_code
                 for i in range(4)]
    assert codes == [401, 401, 401, 429]
