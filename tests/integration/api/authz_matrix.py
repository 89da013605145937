"""The authorization matrix: one entry per (method, route) of the OpenAPI document.

Each entry says who may call the route and builds a concrete request. The test walks the
OpenAPI document, so a route added without an entry here fails it. Later issues add their
routes to MATRIX (or to a module that extends it)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.fixtures.runtime import Api


@dataclass
class Actor:
    """A test user: its name, bearer headers and role."""

    username: str
    headers: dict[str, str]


@dataclass
class Request:
    path: str
    json: dict | None = None
    ok: frozenset[int] = frozenset({200})
    headers: dict[str, str] | None = None  # worker routes: the worker's own token
    content: bytes | None = None
    files: dict | None = None
    other_headers: dict[str, str] | None = None  # worker routes: another worker's token


@dataclass
class Case:
    """`permission`: needed to call at all ("public" = no login, None = any signed-in user).
    `owned`: the path names one user's object, so another user (holding `permission`) gets 404.
    `build(api, owner)` returns the request the owner (holding `permission`) may make."""

    permission: str | None
    build: Callable[[Api, Actor], Request]
    owned: bool = False
    worker: bool = False  # a worker-protocol route: worker tokens only, a worker reaches only its jobs
    notes: str = ""
    setup_roles: list[str] = field(default_factory=list)


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def _own_key(api: Api, owner: Actor) -> str:
    return api.client.post("/api/v1/api-keys", headers=owner.headers, json={"name": "k"}).json()["id"]


def _custom_role(api: Api) -> str:
    return api.make_role(permissions=[])


MATRIX: dict[tuple[str, str], Case] = {
    ("POST", "/api/v1/auth/login"): Case("public", lambda api, o: Request(
        "/api/v1/auth/login", {"username": "admin", "password": "admin-password-123"})),
    ("GET", "/api/v1/health"): Case("public", lambda api, o: Request("/api/v1/health")),
    ("POST", "/api/v1/auth/logout"): Case(None, lambda api, o: Request("/api/v1/auth/logout", ok=frozenset({204}))),
    ("GET", "/api/v1/me"): Case(None, lambda api, o: Request("/api/v1/me")),
    ("GET", "/api/v1/permissions"): Case(None, lambda api, o: Request("/api/v1/permissions")),
    ("GET", "/api/v1/users"): Case(None, lambda api, o: Request("/api/v1/users")),
    ("GET", "/api/v1/users/{username}"): Case(
        None, lambda api, o: Request(f"/api/v1/users/{o.username}"), owned=True),
    ("PATCH", "/api/v1/users/{username}"): Case(
        None, lambda api, o: Request(f"/api/v1/users/{o.username}", {"email": "me@example.com"}), owned=True),
    ("POST", "/api/v1/users"): Case("user:all", lambda api, o: Request(
        "/api/v1/users", {"username": _unique("n"), "password": "password-123", "roles": []},
        ok=frozenset({201}))),
    ("DELETE", "/api/v1/users/{username}"): Case("user:all", lambda api, o: Request(
        f"/api/v1/users/{api.make_user(roles=[])['username']}", ok=frozenset({204}))),
    ("GET", "/api/v1/roles"): Case(None, lambda api, o: Request("/api/v1/roles")),
    ("GET", "/api/v1/roles/{name}"): Case(None, lambda api, o: Request("/api/v1/roles/artist")),
    ("POST", "/api/v1/roles"): Case("role:all", lambda api, o: Request(
        "/api/v1/roles", {"name": _unique("r"), "permissions": []}, ok=frozenset({201}))),
    ("PATCH", "/api/v1/roles/{name}"): Case("role:all", lambda api, o: Request(
        f"/api/v1/roles/{_custom_role(api)}", {"description": "changed"})),
    ("DELETE", "/api/v1/roles/{name}"): Case("role:all", lambda api, o: Request(
        f"/api/v1/roles/{_custom_role(api)}", ok=frozenset({204}))),
    ("GET", "/api/v1/api-keys"): Case(None, lambda api, o: Request("/api/v1/api-keys")),
    ("POST", "/api/v1/api-keys"): Case(None, lambda api, o: Request(
        "/api/v1/api-keys", {"name": "k"}, ok=frozenset({201}))),
    ("DELETE", "/api/v1/api-keys/{key_id}"): Case(None, lambda api, o: Request(
        f"/api/v1/api-keys/{_own_key(api, o)}", ok=frozenset({204})), owned=True),
}

def all_cases() -> dict[tuple[str, str], Case]:
    """The core matrix plus `CASES` of every sibling module named `authz_<feature>.py`."""
    import importlib
    import pathlib

    merged = dict(MATRIX)
    for path in sorted(pathlib.Path(__file__).parent.glob("authz_*.py")):
        if path.stem != "authz_matrix":
            merged.update(importlib.import_module(f"tests.integration.api.{path.stem}").CASES)
    return merged
