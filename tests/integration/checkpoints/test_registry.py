"""Listing, visibility by role, rename, delete with pins, and the lookups the jobs work uses."""

import pytest

from sdfleet.domain.errors import NotFound
from tests.integration.checkpoints.conftest import upload_file
from tests.integration.checkpoints.model_bytes import lora_bytes


@pytest.fixture
def lead(api):
    user = api.make_user(roles=["lead-artist"])
    return user["headers"]


def test_visibility_follows_allowed_roles(api, admin, lead):
    artist = api.make_user(roles=["artist"])["headers"]
    mine = upload_file(api, lead, lora_bytes(), filename="lead-only.safetensors", allowed_roles=["lead-artist"]).json()
    shared = upload_file(api, lead, lora_bytes(), filename="shared.safetensors",
                         allowed_roles=["artist", "lead-artist"]).json()
    assert mine["allowed_roles"] == ["lead-artist"]

    def names(headers, query=""):
        return sorted(c["name"] for c in api.client.get(f"/api/v1/checkpoints{query}", headers=headers).json()["items"])

    assert names(lead) == ["lead-only.safetensors", "shared.safetensors"]
    assert names(artist) == ["shared.safetensors"]
    assert names(admin) == ["lead-only.safetensors", "shared.safetensors"]
    assert api.client.get(f"/api/v1/checkpoints/{mine['id']}", headers=artist).status_code == 404
    assert api.client.get(f"/api/v1/checkpoints/{mine['id']}/download", headers=artist).status_code == 404
    # Filters.
    assert names(lead, "?type=Lora&architecture=sd1&name=shared") == ["shared.safetensors"]
    assert names(lead, "?type=VAE") == [] and names(lead, "?status=active") != []
    assert api.client.get("/api/v1/checkpoints?type=Checkpoint", headers=lead).status_code == 422
    # Share it with artists by PATCH; rename it.
    r = api.client.patch(f"/api/v1/checkpoints/{mine['id']}", headers=lead,
                         json={"allowed_roles": ["artist"], "name": "renamed.safetensors"})
    assert r.status_code == 200 and r.json()["name"] == "renamed.safetensors"
    assert names(artist) == ["renamed.safetensors", "shared.safetensors"]
    # The lead shared it away from their own role: as its uploader they still see it (issue 11, item 8).
    assert api.client.get(f"/api/v1/checkpoints/{mine['id']}", headers=lead).status_code == 200
    r = api.client.patch(f"/api/v1/checkpoints/{mine['id']}", headers=admin, json={"name": "shared.safetensors"})
    assert r.status_code == 409
    assert api.client.patch(f"/api/v1/checkpoints/{mine['id']}", headers=admin,
                            json={"name": "x.ckpt"}).status_code == 422
    # Lookups for jobs.
    service = api.runtime.services.checkpoints
    artist_principal = api.runtime.services.auth.authenticate(artist["Authorization"].split()[1])
    assert service.visible_names(artist_principal, "Lora") == ["renamed.safetensors", "shared.safetensors"]
    assert service.resolve(artist_principal, model_type="Lora", name="shared.safetensors").id == shared["id"]
    with pytest.raises(NotFound, match="Lora model 'nope.safetensors' not found"):
        service.resolve(artist_principal, model_type="Lora", name="nope.safetensors")
    assert service.get_by_sha256(shared["sha256"]).sha256 == shared["sha256"]
    assert service.blob_key(shared["sha256"]) == f"models/{shared['sha256']}"


def test_cursor_pages(api, admin):
    for i in range(3):
        upload_file(api, admin, lora_bytes(), filename=f"p{i}.safetensors")
    first = api.client.get("/api/v1/checkpoints?limit=2", headers=admin).json()
    second = api.client.get(f"/api/v1/checkpoints?limit=2&cursor={first['next_cursor']}", headers=admin).json()
    assert [c["name"] for c in first["items"] + second["items"]] == ["p0.safetensors", "p1.safetensors",
                                                                   "p2.safetensors"]
    assert second["next_cursor"] is None


def test_pinned_models_need_an_admin_to_force_the_delete(api, admin, lead):
    ckpt = upload_file(api, lead, lora_bytes(), allowed_roles=["lead-artist", "admin"]).json()
    api.runtime.services.checkpoints.pinned_by.append(
        lambda checkpoint: ["endpoint 'default' preloads it"] if checkpoint.id == ckpt["id"] else [])
    r = api.client.delete(f"/api/v1/checkpoints/{ckpt['id']}", headers=lead)
    assert r.status_code == 409 and r.json()["error"]["details"]["pinned_by"] == ["endpoint 'default' preloads it"]
    assert api.client.delete(f"/api/v1/checkpoints/{ckpt['id']}?force=true", headers=lead).status_code == 403
    assert api.client.delete(f"/api/v1/checkpoints/{ckpt['id']}?force=true", headers=admin).status_code == 204
    assert api.client.get(f"/api/v1/checkpoints/{ckpt['id']}", headers=admin).status_code == 404
    assert list(api.runtime.objects.list("models/")) == []
