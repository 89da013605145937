"""Model names are unique per viewer (issue 11, item 7): a model the caller cannot see never makes its name
taken, so creating an upload or import, or renaming, tells nothing about hidden models (docs/decisions.md)."""

from __future__ import annotations

from tests.integration.checkpoints.conftest import create_upload, upload_file
from tests.integration.checkpoints.model_bytes import lora_bytes


def _principal(api, headers):
    return api.runtime.services.auth.authenticate(headers["Authorization"].split()[1])


def test_a_hidden_models_name_is_free_and_the_answer_reveals_nothing(api, admin):
    leads = api.make_role(permissions=["checkpoint:all", "inference:all"])
    artists = api.make_role(permissions=["checkpoint:all", "inference:all"])
    lead, artist = api.make_user(roles=[leads])["headers"], api.make_user(roles=[artists])["headers"]
    hidden = upload_file(api, lead, lora_bytes(), filename="secret.safetensors", allowed_roles=[leads]).json()

    # The same answer for the hidden model's name as for a name nobody uses.
    data = lora_bytes()
    taken_hidden = create_upload(api, artist, data, filename="secret.safetensors")
    never_used = create_upload(api, artist, data, filename="never-used.safetensors")
    assert set(taken_hidden) == set(never_used) and taken_hidden["part_count"] == never_used["part_count"]
    # An import checks the name before the URL: a refused URL (422 on `url`) shows the name passed.
    r = api.client.post("/api/v1/checkpoints/imports", headers=artist,
                        json={"url": "http://127.0.0.1/x.safetensors", "name": "secret.safetensors", "type": "Lora"})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "url", r.text

    # The artist's model of that name: theirs to use; the lead keeps resolving their own (the older one).
    mine = upload_file(api, artist, lora_bytes(), filename="secret.safetensors").json()
    assert mine["id"] != hidden["id"] and mine["allowed_roles"] == ["*"]
    service = api.runtime.services.checkpoints
    resolve = service.resolve
    assert resolve(_principal(api, artist), model_type="Lora", name="secret.safetensors").id == mine["id"]
    assert resolve(_principal(api, lead), model_type="Lora", name="secret.safetensors").id == hidden["id"]
    assert resolve(_principal(api, admin), model_type="Lora", name="secret.safetensors").id == hidden["id"]
    assert service.visible_names(_principal(api, lead), "Lora") == ["secret.safetensors"]
    listed = api.client.get("/api/v1/checkpoints?name=secret", headers=admin).json()["items"]
    assert sorted(c["id"] for c in listed) == sorted([hidden["id"], mine["id"]])

    # A name the caller can see is still taken: 409, for the artist (their own) and the lead (both).
    for headers in (artist, lead):
        r = api.client.post("/api/v1/checkpoints/uploads", headers=headers,
                            json={"filename": "secret.safetensors", "type": "Lora", "size": len(data)})
        assert r.status_code == 409, r.text
    # Renames follow the same rule.
    other_hidden = upload_file(api, lead, lora_bytes(), filename="plans.safetensors", allowed_roles=[leads]).json()
    r = api.client.patch(f"/api/v1/checkpoints/{never_used_model(api, artist)}", headers=artist,
                         json={"name": "plans.safetensors"})
    assert r.status_code == 200, r.text
    r = api.client.patch(f"/api/v1/checkpoints/{other_hidden['id']}", headers=lead, json={"name": "secret.safetensors"})
    assert r.status_code == 409, r.text


def never_used_model(api, headers) -> str:
    return upload_file(api, headers, lora_bytes(), filename="renamable.safetensors").json()["id"]


def test_registrations_of_one_name_are_serialised(backend_api, tmp_path):
    """Without a unique constraint, the name check and the insert are one critical section: a registration
    waits for another transaction holding the name's lock, then sees its model (409), on SQLite and PostgreSQL."""
    import dataclasses
    import threading
    import time

    from sdfleet.domain.checkpoints import ModelType
    from sdfleet.domain.errors import Conflict
    from sdfleet.domain.ids import new_id
    from sdfleet.store.checkpoints import CheckpointRepository

    service = backend_api.runtime.services.checkpoints
    first, second = tmp_path / "first.safetensors", tmp_path / "second.safetensors"
    first.write_bytes(lora_bytes())
    second.write_bytes(lora_bytes())
    base = service.register_file(first, name="base.safetensors", model_type="Lora")
    intake = service.intake.inspect_file(second, declared=ModelType.LORA)
    locked, outcome = threading.Event(), {}

    def register() -> None:
        locked.wait(timeout=60)
        try:
            outcome["result"] = service.register(intake, name="race.safetensors", model_type=ModelType.LORA,
                                                 allowed_roles=("*",), created_by=None, source="cli")
        except Conflict as exc:
            outcome["result"] = exc

    thread = threading.Thread(target=register)
    thread.start()
    try:
        with backend_api.runtime.database.session(write_lock=True) as s:
            repo = CheckpointRepository(s)
            repo.lock_name("Lora", "race.safetensors")
            repo.add(dataclasses.replace(base, id=new_id(), name="race.safetensors"))
            locked.set()
            time.sleep(1.0)  # the other registration reaches the lock meanwhile (if it does not, it sees the row)
        thread.join(timeout=120)
    finally:
        service.intake.discard(intake)
    assert isinstance(outcome.get("result"), Conflict), outcome
