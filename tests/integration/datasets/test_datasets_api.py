"""Datasets through the API: images one by one and as a zip (kohya sidecars and `N_name` folders), captions,
thumbnails, content hash, visibility by role, and each refusal named — on SQLite + local and PostgreSQL + S3."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.integration.datasets.images import bomb_png, colors, jpeg, noise_png, png, zip_of

BASE = "/api/v1/datasets"


def _trainer(api) -> dict:
    return api.make_user(roles=[api.make_role(permissions=["train:all"])])


def _create(api, headers, **body) -> dict:
    r = api.client.post(BASE, headers=headers, json={"name": "cats", "resolution": 64, **body})
    assert r.status_code == 201, r.text
    return r.json()


def _add(api, headers, dataset_id, data: bytes, filename="img.png", **form):
    return api.client.post(f"{BASE}/{dataset_id}/images", headers=headers, files={"file": (filename, data)},
                           data={k: str(v) for k, v in form.items()})


def test_dataset_lifecycle(backend_api):
    api = backend_api
    me = _trainer(api)["headers"]
    ds = _create(api, me, description="my cat")
    assert ds["image_count"] == 0 and ds["allowed_roles"] == []
    # 1. One image with a caption; a JPEG with repeats.
    one, two, three, four = colors(4)
    r = _add(api, me, ds["id"], one, caption="a photo of sks cat")
    assert r.status_code == 201, r.text
    first = r.json()["items"][0]
    assert (first["caption"], first["repeats"], first["width"], first["format"]) == ("a photo of sks cat", 1, 64, "png")
    r = _add(api, me, ds["id"], jpeg(96, 64), filename="side.jpg", repeats=3)
    assert r.status_code == 201 and r.json()["items"][0]["repeats"] == 3
    # 2. A zip: sidecar captions, a kohya `5_sks cat` folder (repeats 5, its name the caption without sidecar).
    archive = zip_of({"a.png": two, "a.txt": "sks cat on a sofa\n", "5_sks cat/b.png": three,
                      "5_sks cat/c.png": four, "5_sks cat/c.caption": "sks cat, close-up",
                      "__MACOSX/._a.png": b"junk", ".DS_Store": b"junk"})
    r = _add(api, me, ds["id"], archive, filename="set.zip")
    assert r.status_code == 201, r.text
    added = {i["filename"]: (i["caption"], i["repeats"]) for i in r.json()["items"]}
    assert added == {"a.png": ("sks cat on a sofa", 1), "5_sks cat/b.png": ("sks cat", 5),
                     "5_sks cat/c.png": ("sks cat, close-up", 5)}
    dataset = r.json()["dataset"]
    assert dataset["image_count"] == 5 and dataset["total_bytes"] > 0
    # 3. List, read, thumbnail.
    page = api.client.get(f"{BASE}/{ds['id']}/images?limit=3", headers=me).json()
    rest = api.client.get(f"{BASE}/{ds['id']}/images?cursor={page['next_cursor']}", headers=me).json()
    assert len(page["items"]) == 3 and len(rest["items"]) == 2 and rest["next_cursor"] is None
    content = api.client.get(first["url"], headers=me)
    assert content.status_code == 200 and content.content == one and content.headers["content-type"] == "image/png"
    thumb = api.client.get(f"{first['url']}?size=32", headers=me)
    assert Image.open(io.BytesIO(thumb.content)).size == (32, 32)
    # 4. A caption edit changes the content hash; putting it back restores it.
    before = dataset["content_hash"]
    r = api.client.patch(f"{BASE}/{ds['id']}/images/{first['id']}", headers=me, json={"caption": "sks cat\nsleeping"})
    assert r.status_code == 200 and r.json()["caption"] == "sks cat sleeping"
    assert api.client.get(f"{BASE}/{ds['id']}", headers=me).json()["content_hash"] != before
    api.client.patch(f"{BASE}/{ds['id']}/images/{first['id']}", headers=me, json={"caption": "a photo of sks cat"})
    assert api.client.get(f"{BASE}/{ds['id']}", headers=me).json()["content_hash"] == before
    # 5. Delete an image, then the dataset: its objects go too.
    assert api.client.delete(f"{BASE}/{ds['id']}/images/{first['id']}", headers=me).status_code == 204
    assert api.client.get(f"{BASE}/{ds['id']}", headers=me).json()["image_count"] == 4
    assert len(list(api.runtime.objects.list(f"datasets/{ds['id']}/"))) == 4
    assert api.client.delete(f"{BASE}/{ds['id']}", headers=me).status_code == 204
    assert api.client.get(f"{BASE}/{ds['id']}", headers=me).status_code == 404
    assert list(api.runtime.objects.list(f"datasets/{ds['id']}/")) == []


@pytest.mark.parametrize(("data", "filename", "reason"), [
    (b"GIF89a not really", "x.gif", "not_an_image"),
    (b"\x89PNG\r\n\x1a\n truncated", "x.png", "not_an_image"),
    (bomb_png(), "bomb.png", "decompression_bomb"),
    (png(24, 24), "tiny.png", "too_small"),
    (zip_of({"a.txt": "orphan caption", "b.png": png()}), "set.zip", "caption_without_image"),
    (zip_of({"readme.md": "hi"}), "set.zip", "not_an_image"),
    (zip_of({}), "set.zip", "empty"),
    (zip_of({"0_x/a.png": png()}), "set.zip", None),  # repeats 0: refused naming the folder
    (b"PK\x03\x04 not a zip", "set.zip", "not_a_zip"),
], ids=["gif-bytes", "truncated-png", "bomb", "too-small", "caption-without-image", "other-file", "empty-zip",
        "zero-repeats", "broken-zip"])
def test_refusals_are_named_and_leave_nothing(api, data, filename, reason):
    me = _trainer(api)["headers"]
    ds = _create(api, me, resolution=128)
    kept = _add(api, me, ds["id"], png(128, 128))
    assert kept.status_code == 201
    r = _add(api, me, ds["id"], data, filename=filename)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["details"].get("reason") == reason and error["details"]["field"]
    after = api.client.get(f"{BASE}/{ds['id']}", headers=me).json()
    assert after["image_count"] == 1 and after["content_hash"] == kept.json()["dataset"]["content_hash"]
    assert len(list(api.runtime.objects.list(f"datasets/{ds['id']}/"))) == 1


def test_duplicates_are_refused_and_a_failed_zip_adds_nothing(api):
    me = _trainer(api)["headers"]
    ds = _create(api, me)
    a, b, c = colors(3)
    assert _add(api, me, ds["id"], a).status_code == 201
    r = _add(api, me, ds["id"], a, filename="again.png")
    assert r.status_code == 422 and r.json()["error"]["details"]["reason"] == "duplicate"
    # A zip whose last image is a duplicate adds none of its images (all or nothing).
    r = _add(api, me, ds["id"], zip_of({"1.png": b, "2.png": c, "3.png": a}), filename="set.zip")
    assert r.status_code == 422 and r.json()["error"]["details"]["reason"] == "duplicate"
    assert api.client.get(f"{BASE}/{ds['id']}", headers=me).json()["image_count"] == 1
    assert len(list(api.runtime.objects.list(f"datasets/{ds['id']}/"))) == 1
    r = _add(api, me, ds["id"], zip_of({"1.png": b, "x/1.png": b}), filename="set.zip")
    assert r.status_code == 422 and r.json()["error"]["details"]["reason"] == "duplicate"


def test_visibility_and_ownership(api):
    role = api.make_role(permissions=["train:all"])
    owner = api.make_user(roles=[role])["headers"]
    colleague = api.make_user(roles=[role])["headers"]
    stranger = _trainer(api)["headers"]
    artist = api.make_user(roles=["artist"])["headers"]
    ds = _create(api, owner)
    image = _add(api, owner, ds["id"], png()).json()["items"][0]
    # Private by default: other trainers do not see it; an artist without train:all is refused outright.
    assert api.client.get(f"{BASE}/{ds['id']}", headers=colleague).status_code == 404
    assert api.client.get(BASE, headers=colleague).json()["items"] == []
    assert api.client.get(BASE, headers=artist).status_code == 403
    assert api.client.get(f"{BASE}/{ds['id']}", headers=api.admin()).status_code == 200
    # Shared with the role: colleagues see it and its images but may not change it.
    r = api.client.patch(f"{BASE}/{ds['id']}", headers=owner, json={"allowed_roles": [role]})
    assert r.status_code == 200 and r.json()["allowed_roles"] == [role]
    assert [d["id"] for d in api.client.get(BASE, headers=colleague).json()["items"]] == [ds["id"]]
    assert api.client.get(image["url"], headers=colleague).status_code == 200
    assert api.client.patch(f"{BASE}/{ds['id']}/images/{image['id']}", headers=colleague,
                            json={"caption": "x"}).status_code == 403
    assert _add(api, colleague, ds["id"], jpeg()).status_code == 403
    assert api.client.delete(f"{BASE}/{ds['id']}", headers=colleague).status_code == 403
    assert api.client.get(f"{BASE}/{ds['id']}", headers=stranger).status_code == 404
    # Names are per owner.
    assert api.client.post(BASE, headers=owner, json={"name": "cats", "resolution": 64}).status_code == 409
    assert api.client.post(BASE, headers=colleague, json={"name": "cats", "resolution": 64}).status_code == 201


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "x", "resolution": 500}, "resolution"),
    ({"name": "x", "resolution": 4096}, "resolution"),
    ({"name": "../x"}, "name"),
    ({"name": "x", "allowed_roles": ["no-such-role"]}, "allowed_roles"),
])
def test_bad_dataset_fields_name_the_field(api, body, field):
    r = api.client.post(BASE, headers=_trainer(api)["headers"], json=body)
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == field, r.text


def test_bad_image_fields_name_the_field(api):
    me = _trainer(api)["headers"]
    ds = _create(api, me)
    assert _add(api, me, ds["id"], png(), repeats=0).json()["error"]["details"]["field"] == "repeats"
    image = _add(api, me, ds["id"], png()).json()["items"][0]
    r = api.client.patch(f"{BASE}/{ds['id']}/images/{image['id']}", headers=me, json={"repeats": 101})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "repeats"
    r = api.client.get(f"{image['url']}?size=4000", headers=me)
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "size"


def test_upload_limits_come_from_settings(tmp_path):
    """Dataset uploads have their own body limit (zips are larger than JSON bodies): over it is a 413; images are
    admitted against SDFLEET_MAX_IMAGE_PIXELS."""
    from fastapi.testclient import TestClient

    from sdfleet.bootstrap import build_app
    from tests.fixtures.runtime import Api, make_runtime

    runtime = make_runtime(tmp_path, max_dataset_upload_bytes=1024 * 1024, max_request_bytes=4096,
                           max_image_pixels=64 * 64)
    with TestClient(build_app(runtime, local_workers=0)) as client:
        api = Api(client=client, runtime=runtime)
        me = _trainer(api)["headers"]
        ds = _create(api, me)
        assert _add(api, me, ds["id"], noise_png()).status_code == 201  # over the JSON limit, under the upload limit
        r = _add(api, me, ds["id"], b"x" * (1024 * 1024 + 1), filename="big.png")
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        r = _add(api, me, ds["id"], png(96, 64), filename="wide.png")
        assert r.status_code == 422 and r.json()["error"]["details"]["reason"] == "decompression_bomb"
        assert r.json()["error"]["details"]["max_pixels"] == 64 * 64
    runtime.database.dispose()
