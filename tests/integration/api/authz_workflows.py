"""Authorization matrix entries of the published-workflow routes."""

from __future__ import annotations

import uuid

from tests.fixtures.runtime import Api
from tests.integration.api.authz_jobs import image_graph
from tests.integration.api.authz_matrix import Actor, Case, Request

INFER = "inference:all"
PUBLISH = "workflow:all"


def workflow_body(api: Api, owner: Actor, name: str | None = None) -> dict:
    """LoadImage → SaveImage with the image exposed (each artist supplies their own upload)."""
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
    return {"name": name or f"wf-{uuid.uuid4().hex[:8]}", "description": "test", "graph": graph,
            "inputs": [{"name": "image", "node": "1", "input": "image", "type": "image"}]}


def published(api: Api, owner: Actor) -> str:
    """A workflow published by the admin, visible to every artist."""
    admin = Actor("admin", api.admin())
    body = workflow_body(api, admin)
    r = api.client.post("/api/v1/workflows", headers=admin.headers, json=body)
    assert r.status_code == 201, r.text
    return body["name"]


def _approve(api: Api, owner: Actor) -> Request:
    """A version the admin published held for approval; the owner (workflow:all, not its author) approves it."""
    admin = Actor("admin", api.admin())
    body = {**workflow_body(api, admin), "requires_approval": True}
    r = api.client.post("/api/v1/workflows", headers=admin.headers, json=body)
    assert r.status_code == 201, r.text
    return Request(f"/api/v1/workflows/{body['name']}/versions/{r.json()['version']}/approve")


def _run(api: Api, owner: Actor) -> Request:
    name = published(api, owner)
    image = image_graph(api, owner)["1"]["inputs"]["image"]
    return Request(f"/api/v1/workflows/{name}/runs", {"inputs": {"image": image}}, ok=frozenset({202}))


CASES = {
    ("POST", "/api/v1/workflows"): Case(PUBLISH, lambda api, o: Request(
        "/api/v1/workflows", workflow_body(api, o), ok=frozenset({201}))),
    ("GET", "/api/v1/workflows"): Case(INFER, lambda api, o: Request("/api/v1/workflows")),
    ("GET", "/api/v1/workflows/{name}"): Case(INFER, lambda api, o: Request(f"/api/v1/workflows/{published(api, o)}")),
    ("GET", "/api/v1/workflows/{name}/versions"): Case(
        PUBLISH, lambda api, o: Request(f"/api/v1/workflows/{published(api, o)}/versions")),
    ("POST", "/api/v1/workflows/{name}/versions/{version}/unpublish"): Case(
        PUBLISH, lambda api, o: Request(f"/api/v1/workflows/{published(api, o)}/versions/1/unpublish")),
    ("POST", "/api/v1/workflows/{name}/versions/{version}/publish"): Case(
        PUBLISH, lambda api, o: Request(f"/api/v1/workflows/{published(api, o)}/versions/1/publish")),
    ("POST", "/api/v1/workflows/{name}/versions/{version}/approve"): Case(PUBLISH, _approve),
    ("POST", "/api/v1/workflows/{name}/runs"): Case(INFER, _run),
}
