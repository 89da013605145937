"""Actor × target: nobody changes, disables or deletes a user or role holding a permission they lack,
and nobody grants what they lack. The whole matrix (actor permission set × target permission set ×
field) runs against one live app per module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from sdfleet.bootstrap import build_app
from sdfleet.domain.permissions import Permission
from tests.fixtures.runtime import Api, make_runtime

EVERY = frozenset(p.value for p in Permission)

# Permission sets an actor may hold ("admin" = the built-in admin role).
ACTORS: dict[str, frozenset[str]] = {
    "user": frozenset({"user:all"}),
    "user+role": frozenset({"user:all", "role:all"}),
    "all-but-train": EVERY - {"train:all"},
    "admin": EVERY,
    "inference": frozenset({"inference:all"}),
}
# Permission sets a target user (or role) holds.
TARGETS: dict[str, frozenset[str]] = {
    "nothing": frozenset(),
    "user": frozenset({"user:all"}),
    "user+endpoint": frozenset({"user:all", "endpoint:all"}),
    "train": frozenset({"train:all"}),
    "admin": EVERY,
}
GRANTED = frozenset({"checkpoint:all"})  # the role the "grant" field hands out


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[dict]:
    """One app; a role per permission set; one actor per actor set."""
    runtime = make_runtime(tmp_path_factory.mktemp("targets"))
    with TestClient(build_app(runtime, local_workers=0)) as client:
        api = Api(client=client, runtime=runtime)
        admin = api.admin()

        def role_for(perms: frozenset[str]) -> str:
            if perms == EVERY:
                return "admin"
            name = f"r{uuid.uuid4().hex[:10]}"
            r = client.post("/api/v1/roles", headers=admin, json={"name": name, "permissions": sorted(perms)})
            assert r.status_code == 201, r.text
            return name

        roles = {key: role_for(perms) for key, perms in {**ACTORS, **TARGETS}.items() if perms}
        roles["granted"] = role_for(GRANTED)
        actors = {key: api.make_user(roles=[roles[key]])["headers"] for key in ACTORS}
        yield {"api": api, "admin": admin, "roles": roles, "actors": actors}
    runtime.database.dispose()


def _make_target(world: dict, target: str) -> str:
    username = f"t{uuid.uuid4().hex[:10]}"
    roles = [world["roles"][target]] if TARGETS[target] else []
    r = world["api"].client.post("/api/v1/users", headers=world["admin"],
                                 json={"username": username, "password": "target-password-1", "roles": roles})
    assert r.status_code == 201, r.text
    return username


USER_FIELDS = ["email", "password", "disabled", "roles-remove", "roles-grant", "delete"]


@pytest.mark.parametrize("field", USER_FIELDS)
@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("actor", sorted(ACTORS))
def test_user_change_by_actor_on_target(world, actor, target, field):
    api, headers = world["api"], world["actors"][actor]
    username = _make_target(world, target)
    path = f"/api/v1/users/{username}"
    bodies = {
        "email": {"email": "taken-over@example.com"},
        "password": {"password": "taken-over-password"},
        "disabled": {"disabled": True},
        "roles-remove": {"roles": []},
        "roles-grant": {"roles": [world["roles"]["granted"]]},
    }
    r = api.client.delete(path, headers=headers) if field == "delete" else \
        api.client.patch(path, headers=headers, json=bodies[field])

    held, lacking = ACTORS[actor], TARGETS[target] - ACTORS[actor]
    granting = GRANTED if field == "roles-grant" else frozenset()
    if "user:all" not in held:
        # Another user is invisible without user:all; deleting needs it before any lookup.
        assert r.status_code == (403 if field == "delete" else 404), r.text
    elif lacking or granting - held:
        assert r.status_code == 403, (r.status_code, r.text)
        assert set(r.json()["error"]["details"]["permissions"]) == (lacking or granting - held)
    else:
        assert r.status_code == (204 if field == "delete" else 200), r.text

    after = api.client.get(path, headers=world["admin"])
    if r.status_code >= 400:
        # Nothing changed: same record, and the old password still signs in.
        assert after.status_code == 200 and after.json()["email"] is None and not after.json()["disabled"]
        assert after.json()["roles"] == ([world["roles"][target]] if TARGETS[target] else [])
        login = api.client.post("/api/v1/auth/login", json={"username": username, "password": "target-password-1"})
        assert login.status_code == 200, login.text


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_password_takeover_of_a_stronger_user_is_refused(world, target):
    """The reproduction of issue 11 item 1: `user:all` alone resets an admin's password, then signs in."""
    api = world["api"]
    username = _make_target(world, target)
    r = api.client.patch(f"/api/v1/users/{username}", headers=world["actors"]["user"],
                         json={"password": "taken-over-password"})
    login = api.client.post("/api/v1/auth/login", json={"username": username, "password": "taken-over-password"})
    if TARGETS[target] <= ACTORS["user"]:
        assert r.status_code == 200 and login.status_code == 200
    else:
        assert r.status_code == 403 and login.status_code == 401


ROLE_ACTIONS = ["describe", "add-permission", "clear-permissions", "delete", "assign"]


@pytest.mark.parametrize("action", ROLE_ACTIONS)
@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("actor", sorted(ACTORS))
def test_role_change_by_actor_on_target(world, actor, target, action):
    api, headers = world["api"], world["actors"][actor]
    perms = TARGETS[target]
    if perms == EVERY:
        name = "admin"  # the built-in role itself
    else:
        name = f"r{uuid.uuid4().hex[:10]}"
        r = api.client.post("/api/v1/roles", headers=world["admin"],
                            json={"name": name, "permissions": sorted(perms)})
        assert r.status_code == 201, r.text
    path = f"/api/v1/roles/{name}"
    before = api.client.get(path, headers=world["admin"]).json()
    if action == "describe":
        r = api.client.patch(path, headers=headers, json={"description": f"changed by {actor}"})
    elif action == "add-permission":
        r = api.client.patch(path, headers=headers, json={"permissions": sorted(perms | {"role:all"})})
    elif action == "clear-permissions":
        r = api.client.patch(path, headers=headers, json={"permissions": []})
    elif action == "delete":
        r = api.client.delete(path, headers=headers)
    else:
        plain = _make_target(world, "nothing")
        r = api.client.patch(f"/api/v1/users/{plain}", headers=headers, json={"roles": [name]})

    held = ACTORS[actor]
    needed = "user:all" if action == "assign" else "role:all"
    added = frozenset({"role:all"}) if action == "add-permission" else frozenset()
    lacking = (perms | added) - held
    if needed not in held and action == "assign":
        assert r.status_code == 404, r.text  # another user is invisible without user:all
    elif needed not in held:
        assert r.status_code == 403, r.text
        assert r.json()["error"]["details"]["permission"] == needed
    elif lacking:
        assert r.status_code == 403, (r.status_code, r.text)
        assert set(r.json()["error"]["details"]["permissions"]) == lacking
    elif name == "admin" and action in ("clear-permissions", "delete"):
        assert r.status_code == 409, r.text
    else:
        assert r.status_code in (200, 204), r.text

    if r.status_code >= 400 and action != "assign":
        assert api.client.get(path, headers=world["admin"]).json() == before
