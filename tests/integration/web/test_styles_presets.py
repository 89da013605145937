"""Prompt styles (own and team, A1111's /prompt-styles) and presets, on SQLite + local and PostgreSQL + S3."""

from __future__ import annotations

import json

from sdfleet.domain.styles import apply_styles
from sdfleet.store import migrate
from sdfleet.store.database import Database
from sdfleet.store.types import utcnow


def test_styles_own_and_team_with_permissions(backend_api):
    api = backend_api
    lead = api.make_user(roles=["lead-artist"])["headers"]
    artist = api.make_user(roles=["artist"])["headers"]
    other = api.make_user(roles=["artist"])["headers"]

    r = api.client.post("/api/v1/styles", headers=artist, json={"name": "Cinematic", "scope": "team", "prompt": "x"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    team = api.client.post("/api/v1/styles", headers=lead, json={
        "name": "Cinematic", "scope": "team", "prompt": "cinematic still of {prompt}", "negative_prompt": "cartoon"})
    assert team.status_code == 201 and team.json()["scope"] == "team", team.text
    mine = api.client.post("/api/v1/styles", headers=artist, json={"name": "Ink", "prompt": "ink drawing"}).json()
    shadow = api.client.post("/api/v1/styles", headers=artist, json={"name": "Cinematic", "prompt": "my own"}).json()
    dup = api.client.post("/api/v1/styles", headers=artist, json={"name": "Ink"})
    assert dup.status_code == 409 and dup.json()["error"]["details"]["field"] == "name"

    listed = api.client.get("/api/v1/styles", headers=artist).json()["items"]
    assert [(s["name"], s["scope"], s["editable"]) for s in listed] == [
        ("Cinematic", "team", False), ("Cinematic", "user", True), ("Ink", "user", True)]
    a1111 = api.client.get("/sdapi/v1/prompt-styles", headers=artist).json()
    assert a1111 == [{"name": "Cinematic", "prompt": "my own", "negative_prompt": ""},
                     {"name": "Ink", "prompt": "ink drawing", "negative_prompt": ""}]
    assert api.client.get("/sdapi/v1/prompt-styles", headers=other).json() == [
        {"name": "Cinematic", "prompt": "cinematic still of {prompt}", "negative_prompt": "cartoon"}]

    # Another user's style is not found; a team style is the lead's to change.
    assert api.client.patch(f"/api/v1/styles/{mine['id']}", headers=other, json={"prompt": "x"}).status_code == 404
    assert api.client.delete(f"/api/v1/styles/{team.json()['id']}", headers=artist).status_code == 403
    r = api.client.patch(f"/api/v1/styles/{team.json()['id']}", headers=lead, json={"negative_prompt": "3d"})
    assert r.json()["negative_prompt"] == "3d" and r.json()["prompt"] == "cinematic still of {prompt}"
    assert api.client.delete(f"/api/v1/styles/{shadow['id']}", headers=artist).status_code == 204

    # The service other features apply `styles` through: by name, own before team, unknown names refused.
    styles = api.runtime.services.styles
    principal = api.runtime.services.auth.authenticate(artist["Authorization"].split()[1])
    resolved = styles.resolve(principal, ["Cinematic", "Ink"])
    assert apply_styles("a fox", "", resolved) == ("cinematic still of a fox, ink drawing", "3d")
    r = api.client.post("/api/v1/styles", headers=artist, json={"name": " padded"})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "name"
    try:
        styles.resolve(principal, ["Nope"])
    except Exception as exc:  # InvalidInput naming the field and the unknown style
        assert exc.field == "styles" and "Nope" in str(exc)
    else:
        raise AssertionError("an unknown style must be refused")


def test_presets_are_per_user_and_saved_by_name(backend_api):
    api = backend_api
    alice = api.make_user(roles=["artist"])["headers"]
    bob = api.make_user(roles=["artist"])["headers"]
    first = api.client.post("/api/v1/presets", headers=alice, json={"name": "Portrait", "values": {
        "width": "512", "height": "768", "sampler_name": "Euler"}})
    assert first.status_code == 200, first.text
    again = api.client.post("/api/v1/presets", headers=alice, json={"name": "Portrait", "values": {"width": "640"}})
    assert again.json()["id"] == first.json()["id"] and again.json()["values"] == {"width": "640"}
    assert api.client.get("/api/v1/presets", headers=bob).json()["items"] == []
    assert api.client.delete(f"/api/v1/presets/{first.json()['id']}", headers=bob).status_code == 404
    r = api.client.post("/api/v1/presets", headers=alice, json={"name": "Bad", "values": {"a": [1]}})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "values.a"
    assert api.client.delete(f"/api/v1/presets/{first.json()['id']}", headers=alice).status_code == 204
    assert api.client.get("/api/v1/presets", headers=alice).json()["items"] == []


def test_upgrade_gives_an_existing_lead_artist_role_the_new_permissions(database_url):
    database = Database(database_url)
    try:
        migrate.upgrade(database, "0008_datasets")
        with database.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO roles (name, description, permissions, builtin, created_at) VALUES (?, '', ?, ?, ?)"
                if database.is_sqlite else
                "INSERT INTO roles (name, description, permissions, builtin, created_at) VALUES (%s, '', %s, %s, %s)",
                ("lead-artist", json.dumps(["inference:all", "workflow:all"]), True, utcnow()))
        migrate.upgrade(database)
        with database.engine.connect() as conn:
            permissions = json.loads(conn.exec_driver_sql(
                "SELECT permissions FROM roles WHERE name = 'lead-artist'").scalar())
        assert permissions == ["gallery:all", "inference:all", "queue:all", "style:all", "workflow:all"]
    finally:
        database.dispose()
