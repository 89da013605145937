"""Workflow publish/unpublish and endpoint create/scale/delete are in the audit log (issue 11)."""

from __future__ import annotations

GRAPH = {"1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
         "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "w"}}}


def _audit(api, **params) -> list[dict]:
    r = api.client.get("/api/v1/audit", headers=api.admin(), params={"limit": 100, **params})
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["items"]))


def test_workflow_publish_and_unpublish_are_audited(api):
    lead = api.make_user(roles=[api.make_role(permissions=["workflow:all", "inference:all"])])
    r = api.client.post("/api/v1/workflows", headers=lead["headers"], json={"name": "Flow", "graph": GRAPH})
    assert r.status_code == 201, r.text
    version = r.json()["version"]
    base = f"/api/v1/workflows/Flow/versions/{version}"
    assert api.client.post(f"{base}/unpublish", headers=lead["headers"]).status_code == 200
    assert api.client.post(f"{base}/unpublish", headers=lead["headers"]).status_code == 200  # no change: no event
    assert api.client.post(f"{base}/publish", headers=lead["headers"]).status_code == 200

    events = _audit(api, target_kind="workflow")
    assert [e["action"] for e in events] == ["workflow.publish", "workflow.unpublish", "workflow.publish"]
    assert all(e["actor_name"] == lead["username"] and e["target"]["name"] == "Flow" for e in events)
    assert all(e["target"]["id"] == f"Flow@{version}" and e["details"]["version"] == version for e in events)
    assert events[0]["changes"]["published"] == {"before": None, "after": True}
    assert events[1]["changes"] == {"published": {"before": True, "after": False}}
    assert events[2]["details"]["republished"] is True


def test_endpoint_create_scale_and_delete_are_audited(api):
    ops = api.make_user(roles=[api.make_role(permissions=["endpoint:all"])])
    body = {"name": "pool", "devices": ["cpu"], "min_replicas": 0, "max_replicas": 0, "idle_seconds": 5}
    assert api.client.post("/api/v1/endpoints", headers=ops["headers"], json=body).status_code == 201
    r = api.client.patch("/api/v1/endpoints/pool", headers=ops["headers"], json={"max_replicas": 2})
    assert r.status_code == 200, r.text
    r = api.client.patch("/api/v1/endpoints/pool", headers=ops["headers"], json={"max_replicas": 2})
    assert r.status_code == 200, r.text  # nothing changed: no event
    assert api.client.delete("/api/v1/endpoints/pool", headers=ops["headers"]).status_code in (200, 202, 204)

    events = _audit(api, target_kind="endpoint", target="pool")
    assert [e["action"] for e in events] == ["endpoint.create", "endpoint.update", "endpoint.delete"]
    assert all(e["actor_name"] == ops["username"] for e in events)
    assert events[0]["changes"]["max_replicas"] == {"before": None, "after": 0}
    assert events[0]["changes"]["devices"] == {"before": None, "after": ["cpu"]}
    assert events[1]["changes"] == {"max_replicas": {"before": 0, "after": 2}}
    assert events[2]["details"] == {"force": False, "running": 0, "jobs_cancelled": 0}
