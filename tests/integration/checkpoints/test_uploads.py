"""Resumable uploads through the API: parts, resume, completion checks, and nothing left behind on refusal."""

import hashlib

from tests.integration.checkpoints.conftest import create_upload, send_parts, unique_name, upload_file
from tests.integration.checkpoints.model_bytes import lora_bytes, lying_header_bytes, sized_lora_bytes

MiB = 1024 * 1024


def _objects(api, prefix):
    return [o.key for o in api.runtime.objects.list(prefix)]


def test_small_upload_registers_an_inspected_checkpoint(api, admin):
    data = lora_bytes(metadata={"ss_network_dim": "4"})
    r = upload_file(api, admin, data, filename="my-style.safetensors", sha256=hashlib.sha256(data).hexdigest())
    assert r.status_code == 200, r.text
    ckpt = r.json()
    digest = hashlib.sha256(data).hexdigest()
    assert ckpt["name"] == "my-style.safetensors" and ckpt["type"] == "Lora" and ckpt["status"] == "active"
    assert ckpt["sha256"] == digest and ckpt["short_hash"] == digest[:10] and ckpt["size"] == len(data)
    assert ckpt["architecture"] == "sd1" and ckpt["precision"] == "fp16" and ckpt["layout"] == "kohya"
    assert ckpt["metadata"] == {"ss_network_dim": "4"}
    assert ckpt["allowed_roles"] == ["*"], "no allowed_roles given: everyone may see it"
    assert _objects(api, "models/") == [f"models/{digest}"]
    assert _objects(api, "uploads/") == []
    got = api.client.get(f"/api/v1/checkpoints/{ckpt['id']}", headers=admin).json()
    assert got == ckpt


def test_multipart_upload_resumes_after_a_dropped_client(api, admin):
    data = sized_lora_bytes(11)  # three 5 MiB parts
    upload = create_upload(api, admin, data)
    assert upload["part_size"] == 5 * MiB and upload["part_count"] == 3
    send_parts(api, admin, upload, data, only=[2])
    # The client dies; a new one asks what arrived and sends the rest, in any order, one part twice.
    state = api.client.get(f"/api/v1/checkpoints/uploads/{upload['upload_id']}", headers=admin).json()
    assert [p["part_number"] for p in state["parts"]] == [2] and state["missing_parts"] == [1, 3]
    send_parts(api, admin, upload, data, only=[3, 1, 2])
    r = api.client.post(f"/api/v1/checkpoints/uploads/{upload['upload_id']}/complete", headers=admin, json={})
    assert r.status_code == 200, r.text
    assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()
    ckpt_id = r.json()["id"]
    # Download the whole file, and a range of it.
    whole = api.client.get(f"/api/v1/checkpoints/{ckpt_id}/download", headers=admin)
    assert whole.status_code == 200 and whole.content == data
    part = api.client.get(f"/api/v1/checkpoints/{ckpt_id}/download", headers={**admin, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = api.client.get(f"/api/v1/checkpoints/{ckpt_id}/download", headers={**admin, "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    bad = api.client.get(f"/api/v1/checkpoints/{ckpt_id}/download",
                         headers={**admin, "Range": f"bytes={len(data)}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{len(data)}"


def test_part_checks(api, admin):
    data = sized_lora_bytes(6)  # a 5 MiB part and a short last one
    upload = create_upload(api, admin, data)
    url = f"/api/v1/checkpoints/uploads/{upload['upload_id']}/parts"
    # Too short (a truncated body) and too long are refused and not stored.
    r = api.client.put(f"{url}/1", headers=admin, content=data[: 5 * MiB - 1])
    assert r.status_code == 422 and "exactly" in r.json()["error"]["message"]
    r = api.client.put(f"{url}/2", headers=admin, content=data[5 * MiB :] + b"x")
    assert r.status_code == 422
    # Out of range part number; wrong per-part checksum.
    assert api.client.put(f"{url}/3", headers=admin, content=b"x").status_code == 422
    r = api.client.put(f"{url}/2", headers={**admin, "X-Part-SHA256": "0" * 64}, content=data[5 * MiB :])
    assert r.status_code == 422 and r.json()["error"]["details"]["reason"] == "part_checksum_mismatch"
    state = api.client.get(f"/api/v1/checkpoints/uploads/{upload['upload_id']}", headers=admin).json()
    assert state["parts"] == []
    # A correct part, then the same bytes again (idempotent), then other bytes (409).
    good = data[5 * MiB :]
    r = api.client.put(f"{url}/2", headers={**admin, "X-Part-SHA256": hashlib.sha256(good).hexdigest()}, content=good)
    assert r.status_code == 200
    assert api.client.put(f"{url}/2", headers=admin, content=good).status_code == 200
    other = bytes(len(good))
    assert api.client.put(f"{url}/2", headers=admin, content=other).status_code == 409
    # Completing with a part missing is a 422 naming it; the upload stays open for a resume.
    r = api.client.post(f"/api/v1/checkpoints/uploads/{upload['upload_id']}/complete", headers=admin, json={})
    assert r.status_code == 422 and r.json()["error"]["details"]["missing_parts"] == [1]
    send_parts(api, admin, upload, data, only=[1])
    # A completion listing parts out of order or repeated is refused.
    for parts in ([2, 1], [1, 1, 2]):
        r = api.client.post(f"/api/v1/checkpoints/uploads/{upload['upload_id']}/complete", headers=admin,
                            json={"parts": parts})
        assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "parts"
    r = api.client.post(f"/api/v1/checkpoints/uploads/{upload['upload_id']}/complete", headers=admin,
                        json={"parts": [1, 2]})
    assert r.status_code == 200, r.text
    # A part for a finished upload is a 409.
    r = api.client.put(f"{url}/1", headers=admin, content=data[: 5 * MiB])
    assert r.status_code == 409 and "completed" in r.json()["error"]["message"]


def _refused_upload(api, admin, data, **fields):
    r = upload_file(api, admin, data, **fields)
    assert 400 <= r.status_code < 500, r.text
    assert _objects(api, "uploads/") == [] and _objects(api, "models/") == []
    assert api.client.get("/api/v1/checkpoints", headers=admin).json()["items"] == []
    return r.json()["error"]


def test_refusals_leave_nothing_behind(api, admin):
    data = lora_bytes()
    assert _refused_upload(api, admin, data, sha256="a" * 64)["details"]["reason"] == "hash_mismatch"
    assert _refused_upload(api, admin, data, type="VAE")["details"]["reason"] == "wrong_type"
    assert _refused_upload(api, admin, b"hello, not a model " * 10)["details"]["reason"] == "not_a_model"
    assert _refused_upload(api, admin, lying_header_bytes())["details"]["reason"] == "corrupt_header"


def test_create_checks(api, admin):
    def create(**fields):
        body = {"filename": unique_name(), "type": "Lora", "size": 100, **fields}
        return api.client.post("/api/v1/checkpoints/uploads", headers=admin, json=body)

    assert create(type="Checkpoint").json()["error"]["details"]["field"] == "type"
    assert create(filename="notes.txt").json()["error"]["details"]["field"] == "filename"
    assert create(filename="../x.safetensors").status_code == 422
    assert create(size=63).json()["error"]["details"]["field"] == "size"
    assert create(size=1 << 60).json()["error"]["details"]["field"] == "size"
    assert create(sha256="xyz").json()["error"]["details"]["field"] == "sha256"
    assert create(allowed_roles=["nope"]).json()["error"]["details"]["field"] == "allowed_roles"
    # A duplicate name of the same type is a 409, at creation and at completion.
    data = lora_bytes()
    assert upload_file(api, admin, data, filename="dup.safetensors").status_code == 200
    assert create(filename="dup.safetensors").status_code == 409
    upload = create_upload(api, admin, lora_bytes(), filename="dup2.safetensors")
    send_parts(api, admin, upload, lora_bytes())
    api.client.patch(f"/api/v1/checkpoints/{api.client.get('/api/v1/checkpoints', headers=admin).json()['items'][0]['id']}",
                     headers=admin, json={"name": "dup2.safetensors"})
    r = api.client.post(f"/api/v1/checkpoints/uploads/{upload['upload_id']}/complete", headers=admin, json={})
    assert r.status_code == 409
    assert len(_objects(api, "models/")) == 1 and _objects(api, "uploads/") == []


def test_same_file_twice_is_stored_once(api, admin):
    data = lora_bytes()
    first = upload_file(api, admin, data).json()
    second = upload_file(api, admin, data).json()
    assert first["sha256"] == second["sha256"] and first["id"] != second["id"]
    assert _objects(api, "models/") == [f"models/{first['sha256']}"]
    assert api.client.delete(f"/api/v1/checkpoints/{first['id']}", headers=admin).status_code == 204
    assert _objects(api, "models/") == [f"models/{first['sha256']}"]  # still used by the second
    assert api.client.delete(f"/api/v1/checkpoints/{second['id']}", headers=admin).status_code == 204
    assert _objects(api, "models/") == []


def test_abandoned_uploads_expire(api, admin):
    from datetime import timedelta

    data = sized_lora_bytes(6)
    upload = create_upload(api, admin, data)
    send_parts(api, admin, upload, data, only=[1])
    uploads = api.runtime.services.uploads
    later = api.runtime.services.checkpoints.clock() + timedelta(days=2)
    uploads._clock = lambda: later
    assert uploads.expire_abandoned() == 1
    assert _objects(api, "uploads/") == []
    assert not list(api.runtime.objects.root.joinpath(".sdfleet", "multipart").glob("*"))
    r = api.client.put(f"/api/v1/checkpoints/uploads/{upload['upload_id']}/parts/2", headers=admin,
                       content=data[5 * MiB :])
    assert r.status_code == 409 and "expired" in r.json()["error"]["message"]
