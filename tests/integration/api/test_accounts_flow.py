"""The issue's "done when": admin makes a role and a user; the user logs in, makes a key, uses it,
and is refused what the role does not allow — on SQLite + local and on PostgreSQL + S3."""

import base64


def test_admin_role_user_key_flow(backend_api):
    api = backend_api
    admin = api.admin()
    r = api.client.post("/api/v1/roles", headers=admin,
                        json={"name": "painters", "permissions": ["inference:all"], "description": "Painters"})
    assert r.status_code == 201, r.text
    assert r.json()["permissions"] == ["inference:all"]
    r = api.client.post("/api/v1/users", headers=admin,
                        json={"username": "pia", "password": "pia-password-1", "roles": ["painters"]})
    assert r.status_code == 201, r.text
    assert "password" not in r.text and "hash" not in r.text

    pia = api.login("pia", "pia-password-1")
    me = api.client.get("/api/v1/me", headers=pia).json()
    assert me["username"] == "pia" and me["permissions"] == ["inference:all"]

    r = api.client.post("/api/v1/api-keys", headers=pia, json={"name": "laptop"})
    assert r.status_code == 201
    key = r.json()["key"]
    assert key.startswith("sfk_") and r.json()["prefix"] == key[:12]
    listed = api.client.get("/api/v1/api-keys", headers=pia).json()["items"]
    assert [k["name"] for k in listed] == ["laptop"] and key not in str(listed)

    with_key = {"Authorization": f"Bearer {key}"}
    assert api.client.get("/api/v1/me", headers=with_key).json()["username"] == "pia"
    basic = base64.b64encode(f"pia:{key}".encode()).decode()
    assert api.client.get("/api/v1/me", headers={"Authorization": f"Basic {basic}"}).status_code == 200
    wrong_user = base64.b64encode(f"admin:{key}".encode()).decode()
    assert api.client.get("/api/v1/me", headers={"Authorization": f"Basic {wrong_user}"}).status_code == 401

    # What the role does not allow.
    r = api.client.post("/api/v1/roles", headers=with_key, json={"name": "x", "permissions": []})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = api.client.post("/api/v1/users", headers=with_key, json={"username": "x1", "password": "password-x1"})
    assert r.status_code == 403
    assert api.client.get("/api/v1/users/admin", headers=with_key).status_code == 404
    users = api.client.get("/api/v1/users", headers=with_key).json()["items"]
    assert [u["username"] for u in users] == ["pia"]

    # Revoking the key and logging out end access.
    key_id = listed[0]["id"]
    assert api.client.delete(f"/api/v1/api-keys/{key_id}", headers=pia).status_code == 204
    assert api.client.get("/api/v1/me", headers=with_key).status_code == 401
    assert api.client.post("/api/v1/auth/logout", headers=pia).status_code == 204
    assert api.client.get("/api/v1/me", headers=pia).status_code == 401

    health = api.client.get("/api/v1/health")
    assert health.status_code == 200 and health.json()["checks"] == {"database": "ok", "objects": "ok"}
