"""The audit log through the API: what account changes record, filters, paging, no secrets, who may read it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

SECRETS = ["user-password-1", "changed-password-9", "typed-into-username-field"]


def _events(api, headers, **params) -> list[dict]:
    r = api.client.get("/api/v1/audit", headers=headers, params={"limit": 200, **params})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_account_changes_are_recorded_without_secrets(backend_api):
    api = backend_api
    admin = api.admin()
    role = api.make_role(permissions=["inference:all"])
    user = api.make_user(roles=[role])
    name = user["username"]
    api.client.post("/api/v1/auth/login", json={"username": name, "password": "wrong-password"})
    api.client.post("/api/v1/auth/login", json={"username": "typed-into-username-field", "password": "x" * 10})
    api.client.patch(f"/api/v1/users/{name}", headers=admin, json={"email": "u@example.com", "roles": []})
    api.client.patch(f"/api/v1/users/{name}", headers=user["headers"],
                     json={"password": "changed-password-9", "current_password": "user-password-1"})
    key = api.client.post("/api/v1/api-keys", headers=user["headers"], json={"name": "ci"}).json()
    api.client.delete(f"/api/v1/api-keys/{key['id']}", headers=user["headers"])
    api.client.patch(f"/api/v1/roles/{role}", headers=admin, json={"permissions": ["inference:all", "train:all"]})
    api.client.delete(f"/api/v1/roles/{role}", headers=admin)
    api.client.delete(f"/api/v1/users/{name}", headers=admin)

    mine = list(reversed(_events(api, admin, target=name))) + _events(api, admin, target_kind="api_key")
    actions = [e["action"] for e in mine]
    assert actions == ["user.create", "auth.login", "auth.login_failed", "user.update", "user.password",
                       "user.delete", "api_key.delete", "api_key.create"]
    by_action = {e["action"]: e for e in mine}
    update = by_action["user.update"]
    assert update["actor_name"] == "admin" and update["credential"] == "session" and update["address"] == "testclient"
    assert update["changes"] == {"email": {"before": None, "after": "u@example.com"},
                                 "roles": {"before": [role], "after": []}}
    password = by_action["user.password"]
    assert password["actor_name"] == name and password["changes"] == {"password": {"changed": True}}
    assert password["details"] == {"by": "self", "sessions_revoked": 0, "api_keys_revoked": 0}
    assert by_action["auth.login_failed"]["details"] == {"reason": "wrong_credentials"}
    assert by_action["api_key.create"]["changes"]["prefix"]["after"] == key["prefix"]
    assert by_action["user.delete"]["changes"]["email"] == {"before": "u@example.com", "after": None}
    role_events = _events(api, admin, target=role)
    assert [e["action"] for e in role_events] == ["role.delete", "role.update", "role.create"]
    assert role_events[1]["changes"] == {"permissions": {"before": ["inference:all"],
                                                         "after": ["inference:all", "train:all"]}}
    unknown = _events(api, admin, action="auth.login_failed")[0]
    assert unknown["details"] == {"reason": "unknown_user"} and unknown["actor_name"] is None

    # No secret reaches the table: not passwords, not the key, not a password typed as a username.
    with api.runtime.database.session() as s:
        stored = json.dumps([list(map(str, r)) for r in s.execute(text("SELECT * FROM audit_events"))])
    for secret in [*SECRETS, key["key"]]:
        assert secret not in stored


def test_filters_paging_and_time_range(api):
    admin = api.admin()
    for _ in range(5):
        api.make_role(permissions=[])
    first = api.client.get("/api/v1/audit", headers=admin, params={"action": "role.create", "limit": 2}).json()
    second = api.client.get("/api/v1/audit", headers=admin,
                            params={"action": "role.create", "limit": 10, "cursor": first["next_cursor"]}).json()
    assert len(first["items"]) == 2 and len(second["items"]) == 3 and second["next_cursor"] is None
    names = [e["target"]["name"] for e in first["items"] + second["items"]]
    assert len(set(names)) == 5
    now = datetime.now(UTC)
    assert len(_events(api, admin, action="role.", since=(now - timedelta(minutes=5)).isoformat())) == 5
    assert _events(api, admin, action="role.", until=(now - timedelta(minutes=5)).isoformat()) == []
    assert {e["action"] for e in _events(api, admin, actor="admin")} >= {"auth.login", "role.create"}


def test_bad_filters_name_the_field(api):
    admin = api.admin()
    for params, field in [({"action": "user.explode"}, "action"), ({"since": "2030-01-01T00:00:00"}, "since"),
                          ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor")]:
        r = api.client.get("/api/v1/audit", headers=admin, params=params)
        assert r.status_code == 422 and r.json()["error"]["details"]["field"] == field, (params, r.text)


def test_only_holders_of_every_permission_read_it(api):
    from sdfleet.domain.permissions import Permission

    almost = api.make_role(permissions=[p.value for p in Permission if p is not Permission.TRAIN_ALL])
    manager = api.make_user(roles=[almost])
    r = api.client.get("/api/v1/audit", headers=manager["headers"])
    assert r.status_code == 403 and r.json()["error"]["details"]["permissions"] == ["train:all"]
