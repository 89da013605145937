"""Authorization matrix entries of the endpoint routes: `endpoint:all` manages, any signed-in user reads
the endpoints their roles may use (`default` is open to everyone)."""

from __future__ import annotations

import uuid

from tests.fixtures.runtime import Api
from tests.integration.api.authz_matrix import Actor, Case, Request

MANAGE = "endpoint:all"


def _endpoint(api: Api) -> str:
    """A fresh endpoint that never starts replicas (max_replicas 0)."""
    name = f"ep-{uuid.uuid4().hex[:8]}"
    r = api.client.post("/api/v1/endpoints", headers=api.admin(),
                        json={"name": name, "devices": ["cpu"], "min_replicas": 0, "max_replicas": 0})
    assert r.status_code == 201, r.text
    return name


def _create(api: Api, owner: Actor) -> Request:
    body = {"name": f"ep-{uuid.uuid4().hex[:8]}", "devices": ["cpu"], "max_replicas": 0}
    return Request("/api/v1/endpoints", body, ok=frozenset({201}))


CASES = {
    ("POST", "/api/v1/endpoints"): Case(MANAGE, _create),
    ("GET", "/api/v1/endpoints"): Case(None, lambda api, o: Request("/api/v1/endpoints")),
    ("GET", "/api/v1/endpoints/{name}"): Case(None, lambda api, o: Request("/api/v1/endpoints/default")),
    ("PATCH", "/api/v1/endpoints/{name}"): Case(MANAGE, lambda api, o: Request(
        f"/api/v1/endpoints/{_endpoint(api)}", {"idle_seconds": 10})),
    ("DELETE", "/api/v1/endpoints/{name}"): Case(MANAGE, lambda api, o: Request(
        f"/api/v1/endpoints/{_endpoint(api)}", ok=frozenset({202}))),
    ("GET", "/api/v1/endpoints/{name}/replicas"): Case(None, lambda api, o: Request(
        "/api/v1/endpoints/default/replicas")),
    ("GET", "/api/v1/endpoints/{name}/events"): Case(None, lambda api, o: Request(
        "/api/v1/endpoints/default/events")),
}
