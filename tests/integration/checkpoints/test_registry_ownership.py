"""Registry ownership (issue 11, item 8): a model's uploader and admins always see it, whoever re-scopes it,
and every model change is in the audit log, naming whose model was changed."""

from __future__ import annotations

from tests.integration.checkpoints.conftest import upload_file
from tests.integration.checkpoints.model_bytes import lora_bytes


def _audit(api, **params) -> list[dict]:
    r = api.client.get("/api/v1/audit", headers=api.admin(), params={"limit": 100, **params})
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["items"]))


def test_rescoping_never_hides_a_model_from_its_uploader_or_admins_and_is_audited(api, admin):
    uploaders = api.make_role(permissions=["checkpoint:all", "inference:all"])
    curators = api.make_role(permissions=["checkpoint:all"])
    uploader = api.make_user(roles=[uploaders])
    curator = api.make_user(roles=[curators])
    model = upload_file(api, uploader["headers"], lora_bytes(), filename="mine.safetensors",
                        allowed_roles=[uploaders, curators]).json()
    uploader_id = api.runtime.services.users.get(None, uploader["username"]).id
    assert model["created_by"] == uploader_id

    # Another checkpoint:all holder renames it and scopes it to their own role only.
    r = api.client.patch(f"/api/v1/checkpoints/{model['id']}", headers=curator["headers"],
                         json={"name": "taken-over.safetensors", "allowed_roles": [curators]})
    assert r.status_code == 200, r.text

    for headers in (uploader["headers"], admin):
        assert api.client.get(f"/api/v1/checkpoints/{model['id']}", headers=headers).status_code == 200
        listed = api.client.get("/api/v1/checkpoints", headers=headers).json()["items"]
        assert [c["name"] for c in listed] == ["taken-over.safetensors"]
    service = api.runtime.services.checkpoints
    principal = api.runtime.services.auth.authenticate(uploader["headers"]["Authorization"].split()[1])
    assert service.visible_names(principal, "Lora") == ["taken-over.safetensors"]
    assert service.resolve(principal, model_type="Lora", name="taken-over.safetensors").id == model["id"]
    # A third user of neither role does not see it.
    other = api.make_user(roles=[api.make_role(permissions=["inference:all"])])
    assert api.client.get(f"/api/v1/checkpoints/{model['id']}", headers=other["headers"]).status_code == 404

    # The uploader may delete it (they hold checkpoint:all and see it).
    r = api.client.delete(f"/api/v1/checkpoints/{model['id']}", headers=uploader["headers"])
    assert r.status_code == 204, r.text

    events = [e for e in _audit(api, target_kind="model") if e["target"]["id"] == model["id"]]
    assert [e["action"] for e in events] == ["model.create", "model.rename", "model.visibility", "model.delete"]
    create, rename, scope, delete = events
    assert create["actor_name"] == uploader["username"]
    assert create["details"]["source"] == "upload" and create["details"]["by_uploader"] is True
    assert create["changes"]["name"] == {"before": None, "after": "mine.safetensors"}
    for event in (rename, scope):
        assert event["actor_name"] == curator["username"]
        assert event["details"]["uploader_id"] == uploader_id and event["details"]["by_uploader"] is False
    assert rename["changes"] == {"name": {"before": "mine.safetensors", "after": "taken-over.safetensors"}}
    assert scope["changes"] == {"allowed_roles": {"before": sorted([uploaders, curators]), "after": [curators]}}
    assert delete["actor_name"] == uploader["username"] and delete["details"]["by_uploader"] is True
    assert delete["target"]["name"] == "taken-over.safetensors"


def test_a_model_registered_on_a_users_behalf_names_them(api, tmp_path):
    """Imports and trainings finish in the server, without the user's request: the event names the owner."""
    from sdfleet.domain.checkpoints import ModelType

    owner = api.make_user(roles=[api.make_role(permissions=["checkpoint:all"])])
    owner_id = api.runtime.services.users.get(None, owner["username"]).id
    path = tmp_path / "imported.safetensors"
    path.write_bytes(lora_bytes())
    service = api.runtime.services.checkpoints
    intake = service.intake.inspect_file(path, declared=ModelType.LORA)
    try:
        checkpoint = service.register(intake, name="imported.safetensors", model_type=ModelType.LORA,
                                      allowed_roles=("*",), created_by=owner_id, source="import")
    finally:
        service.intake.discard(intake)
    (event,) = [e for e in _audit(api, action="model.create") if e["target"]["id"] == checkpoint.id]
    assert event["actor_name"] == owner["username"] and event["credential"] is None
    assert event["details"]["source"] == "import" and event["details"]["uploader_id"] == owner_id
    assert [e["target"]["id"] for e in _audit(api, actor=owner["username"], action="model.create")] == [checkpoint.id]


def test_models_the_operator_registers_are_audited(api, admin, tmp_path):
    path = tmp_path / "cli.safetensors"
    path.write_bytes(lora_bytes())
    checkpoint = api.runtime.services.checkpoints.register_file(path, name="cli.safetensors", model_type="Lora")
    (event,) = [e for e in _audit(api, action="model.create") if e["target"]["id"] == checkpoint.id]
    assert event["actor_name"] is None and event["details"]["source"] == "cli"
    assert event["details"]["uploader_id"] is None
