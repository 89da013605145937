"""Endpoints over the API: CRUD, visibility by role, validation, routing of jobs, delete rules, events."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sdfleet.domain.endpoints import EndpointConfig
from tests.integration.api.authz_jobs import image_graph
from tests.integration.api.authz_matrix import Actor

BASE = {"devices": ["cpu"], "min_replicas": 0, "max_replicas": 0, "idle_seconds": 5}


def create(api, headers, name, **fields):
    r = api.client.post("/api/v1/endpoints", headers=headers, json={"name": name, **BASE, **fields})
    assert r.status_code == 201, r.text
    return r.json()


def submit(api, user, **fields):
    actor = Actor(username=user["username"], headers=user["headers"])
    return api.client.post("/api/v1/inferences", headers=user["headers"],
                           json={"graph": image_graph(api, actor), **fields})


def test_create_get_update_list_and_events(api):
    admin = api.admin()
    made = create(api, admin, "gpu-pool", devices=["cpu"], target_queue_per_replica=3)
    assert made["status"] == "creating" and made["allowed_roles"] == ["*"] and made["kinds"] == ["inference"]
    r = api.client.patch("/api/v1/endpoints/gpu-pool", headers=admin, json={"max_replicas": 0, "idle_seconds": 9})
    assert r.status_code == 200, r.text
    assert r.json()["idle_seconds"] == 9 and r.json()["target_queue_per_replica"] == 3
    names = [e["name"] for e in api.client.get("/api/v1/endpoints", headers=admin).json()["items"]]
    assert names == ["default", "gpu-pool"]
    # The fleet manager settles it (no replicas wanted) and records why.
    deadline = time.monotonic() + 120  # the fleet manager's pace on a busy 2-core box
    while api.client.get("/api/v1/endpoints/gpu-pool", headers=admin).json()["status"] != "ready":
        assert time.monotonic() < deadline, "endpoint never became ready"
        time.sleep(0.2)
    events = api.client.get("/api/v1/endpoints/gpu-pool/events", headers=admin).json()["items"]
    types = [e["type"] for e in events]
    # The manager is woken by the change, so its status event may come before or after the PATCH's update.
    assert types[0] == "created" and "updated" in types
    assert [e["data"] for e in events if e["type"] == "status"] == [{"from": "creating", "to": "ready"}]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)


def test_bad_values_name_the_field(api):
    admin = api.admin()
    cases = [({"name": "Bad Name"}, "name"), ({"name": "a", "min_replicas": 3, "max_replicas": 2}, "min_replicas"),
             ({"name": "a", "devices": ["tpu:0"]}, "devices"),
             ({"name": "a", "devices": ["cuda:0"], "max_replicas": 2}, "max_replicas"),
             ({"name": "a", "preload": ["0" * 64]}, "preload"), ({"name": "a", "preload": ["xyz"]}, "preload"),
             ({"name": "a", "allowed_roles": ["no-such-role"]}, "allowed_roles"),
             ({"name": "a", "resources": {"num_gpus": 1}}, "resources"),  # local endpoints take no resources
             ({"name": "a", "launcher": "ray", "resources": {"num_gpus": -1}}, "resources"),
             ({"name": "a", "launcher": "ray", "resources": {"bad name": 1}}, "resources"),
             ({"name": "a", "launcher": "ray", "resources": {"num_gpus": "one"}}, "resources"),
             ({"name": "a", "launcher": "k8s"}, "launcher")]
    for body, field in cases:
        r = api.client.post("/api/v1/endpoints", headers=admin, json={**BASE, **body})
        assert r.status_code in (400, 422), (body, r.text)
        assert field in r.text, (body, r.text)
    create(api, admin, "dup")
    r = api.client.post("/api/v1/endpoints", headers=admin, json={"name": "dup", **BASE})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


def test_ray_endpoint_without_a_ray_cluster_is_refused_naming_the_setting(api):
    admin = api.admin()
    body = {**BASE, "name": "on-ray", "launcher": "ray", "min_replicas": 1, "max_replicas": 1,
            "resources": {"num_gpus": 1, "accelerator_type:H100": 1}}
    r = api.client.post("/api/v1/endpoints", headers=admin, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["field"] == "launcher" and "SDFLEET_RAY_ADDRESS" in r.text, r.text
    assert api.client.get("/api/v1/endpoints/on-ray", headers=admin).status_code == 404

    # One made while the server had a Ray cluster (written as the service would) fails, saying why.
    config = EndpointConfig(launcher="ray", min_replicas=1, max_replicas=1, resources={"num_gpus": 1.0})
    api.runtime.services.endpoints.store.add("on-ray", config, now=datetime.now(UTC))
    deadline = time.monotonic() + 30
    while (got := api.client.get("/api/v1/endpoints/on-ray", headers=admin).json())["status"] != "failed":
        assert time.monotonic() < deadline, got
        time.sleep(0.2)
    assert "SDFLEET_RAY_ADDRESS" in got["reason"], got


def test_roles_decide_who_sees_and_who_routes(api):
    admin = api.admin()
    role = api.make_role(permissions=["inference:all"])
    create(api, admin, "team", allowed_roles=[role])
    api.client.patch("/api/v1/endpoints/default", headers=admin, json={"allowed_roles": ["admin"]})
    member, outsider = api.make_user(roles=[role]), api.make_user(roles=["artist"])
    # Visibility: a member sees `team`, an outsider sees neither and gets 404 for it.
    seen = [e["name"] for e in api.client.get("/api/v1/endpoints", headers=member["headers"]).json()["items"]]
    assert seen == ["team"]
    assert api.client.get("/api/v1/endpoints", headers=outsider["headers"]).json()["items"] == []
    assert api.client.get("/api/v1/endpoints/team", headers=outsider["headers"]).status_code == 404
    assert api.client.get("/api/v1/endpoints/team/events", headers=outsider["headers"]).status_code == 404
    # Routing: the member's job goes to `team` (named or not); the outsider's is refused at submission.
    r = submit(api, member)
    assert r.status_code == 202 and api.client.get(f"/api/v1/inferences/{r.json()['id']}",
                                                   headers=member["headers"]).json()["endpoint"] == "team"
    assert submit(api, member, endpoint="team").status_code == 202
    r = submit(api, member, endpoint="default")
    assert r.status_code == 409 and r.json()["error"]["details"]["field"] == "endpoint"
    r = submit(api, outsider)
    assert r.status_code == 409, r.text
    assert submit(api, outsider, endpoint="team").status_code == 409
    assert submit(api, member, endpoint="nope").status_code == 409
    # Managing needs endpoint:all.
    r = api.client.patch("/api/v1/endpoints/team", headers=member["headers"], json={"max_replicas": 1})
    assert r.status_code == 403
    assert api.client.delete("/api/v1/endpoints/team", headers=member["headers"]).status_code == 403


def test_delete_refused_while_running_unless_forced(api):
    admin = api.admin()
    create(api, admin, "busy")
    user = api.make_user(roles=["artist"])
    assert submit(api, user, endpoint="busy").status_code == 202
    waiting = submit(api, user, endpoint="busy").json()["id"]
    worker = api.runtime.services.workers.register(name="w", endpoint="busy")
    claim = api.client.post("/api/v1/worker/claim", headers={"Authorization": f"Bearer {worker.token}"},
                            json={"wait_seconds": 0})
    assert claim.status_code == 200, claim.text
    r = api.client.delete("/api/v1/endpoints/busy", headers=admin)
    assert r.status_code == 409 and r.json()["error"]["details"]["running"] == 1
    r = api.client.delete("/api/v1/endpoints/busy", headers=admin, params={"force": "true"})
    assert r.status_code == 202 and r.json()["status"] == "deleting"
    assert api.client.get(f"/api/v1/inferences/{waiting}", headers=user["headers"]).json()["status"] == "cancelled"
    # New jobs are refused at once; the endpoint ends deleted and leaves the list; its name can be reused.
    assert submit(api, user, endpoint="busy").status_code == 409
    deadline = time.monotonic() + 120  # the fleet manager's pace on a busy 2-core box
    while api.client.get("/api/v1/endpoints/busy", headers=admin).json()["status"] != "deleted":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert "busy" not in [e["name"] for e in api.client.get("/api/v1/endpoints", headers=admin).json()["items"]]
    assert create(api, admin, "busy")["status"] == "creating"


def test_preloaded_model_is_pinned_in_the_registry(api, demo_files):
    from tests.fixtures.live import register_demo

    register_demo(api.runtime, demo_files)
    admin = api.admin()
    models = api.client.get("/api/v1/checkpoints", headers=admin).json()["items"]
    sd15 = next(m for m in models if m["name"] == "demo-sd15.safetensors")
    create(api, admin, "warm", preload=[sd15["sha256"]])
    r = api.client.delete(f"/api/v1/checkpoints/{sd15['id']}", headers=admin)
    assert r.status_code == 409 and "warm" in r.text


def test_crud_and_events_on_every_backend(backend_api):
    api = backend_api
    admin = api.admin()
    create(api, admin, "pg-pool", allowed_roles=["artist", "*"], idle_seconds=1.5)
    r = api.client.patch("/api/v1/endpoints/pg-pool", headers=admin, json={"devices": ["cpu", "auto"]})
    assert r.status_code == 200 and r.json()["devices"] == ["cpu", "auto"]
    assert r.json()["allowed_roles"] == ["*", "artist"] and r.json()["idle_seconds"] == 1.5
    assert api.client.delete("/api/v1/endpoints/pg-pool", headers=admin).status_code == 202
    deadline = time.monotonic() + 120  # the fleet manager's pace on a busy 2-core box
    while api.client.get("/api/v1/endpoints/pg-pool", headers=admin).json()["status"] != "deleted":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    page = api.client.get("/api/v1/endpoints/pg-pool/events", headers=admin, params={"limit": 2}).json()
    assert len(page["items"]) == 2 and page["next_cursor"] == "2"
    rest = api.client.get("/api/v1/endpoints/pg-pool/events", headers=admin,
                          params={"cursor": page["next_cursor"]}).json()["items"]
    events = page["items"] + rest
    # The fleet manager's first status event may come before or after the PATCH's `updated`.
    assert events[0]["type"] == "created" and [e["type"] for e in events].count("updated") == 1
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert rest[-1]["type"] == "status" and rest[-1]["data"]["to"] == "deleted"


def test_the_list_is_paged_by_name_on_every_backend(backend_api):
    api = backend_api
    admin = api.admin()
    role = api.make_role(permissions=["inference:all"])
    api.client.patch("/api/v1/endpoints/default", headers=admin, json={"allowed_roles": ["admin"]})
    for name, roles in [("pa", [role]), ("pb", ["admin"]), ("pc", [role]), ("pd", [role])]:
        create(api, admin, name, allowed_roles=roles)
    member = api.make_user(roles=[role])

    def pages(headers):
        seen, cursor, count = [], None, 0
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            r = api.client.get("/api/v1/endpoints", headers=headers, params=params)
            assert r.status_code == 200, r.text
            assert len(r.json()["items"]) <= 2
            seen += [e["name"] for e in r.json()["items"]]
            cursor, count = r.json()["next_cursor"], count + 1
            if cursor is None:
                return seen, count

    # The member sees three (`pb` and `default` are hidden between and before them): two pages, each once.
    assert pages(member["headers"]) == (["pa", "pc", "pd"], 2)
    assert pages(admin) == (["default", "pa", "pb", "pc", "pd"], 3)
    # No limit: the default page size, by name, as before.
    r = api.client.get("/api/v1/endpoints", headers=admin).json()
    assert [e["name"] for e in r["items"]] == ["default", "pa", "pb", "pc", "pd"] and r["next_cursor"] is None
    for params, field in [({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"limit": "two"}, "limit"),
                          ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"), ({"cursor": "WyJCYWQgTmFtZSJd"}, "cursor"),
                          ({"cursor": "WzVd"}, "cursor")]:
        r = api.client.get("/api/v1/endpoints", headers=admin, params=params)
        assert r.status_code == 422 and r.json()["error"]["details"]["field"] == field, (params, r.text)
