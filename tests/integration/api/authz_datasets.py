"""Authorization matrix entries of training datasets (/api/v1/datasets)."""

from __future__ import annotations

import uuid

from tests.fixtures.runtime import Api
from tests.integration.api.authz_matrix import Actor, Case, Request
from tests.integration.datasets.images import png

BASE = "/api/v1/datasets"
NO_SUCH_ID = "0" * 26


def _dataset(api: Api, owner: Actor) -> str:
    """A dataset of `owner` (private), or a dummy id when the owner may not create one."""
    r = api.client.post(BASE, headers=owner.headers, json={"name": f"d{uuid.uuid4().hex[:8]}", "resolution": 64})
    return r.json()["id"] if r.status_code == 201 else NO_SUCH_ID


def _image(api: Api, owner: Actor) -> str:
    dataset_id = _dataset(api, owner)
    r = api.client.post(f"{BASE}/{dataset_id}/images", headers=owner.headers, files={"file": ("a.png", png())})
    image_id = r.json()["items"][0]["id"] if r.status_code == 201 else NO_SUCH_ID
    return f"{BASE}/{dataset_id}/images/{image_id}"


CASES: dict[tuple[str, str], Case] = {
    ("POST", BASE): Case("train:all", lambda api, o: Request(
        BASE, {"name": f"d{uuid.uuid4().hex[:8]}", "resolution": 64}, ok=frozenset({201}))),
    ("GET", BASE): Case("train:all", lambda api, o: Request(BASE)),
    ("GET", f"{BASE}/{{dataset_id}}"): Case("train:all", lambda api, o: Request(f"{BASE}/{_dataset(api, o)}"),
                                            owned=True),
    ("PATCH", f"{BASE}/{{dataset_id}}"): Case("train:all", lambda api, o: Request(
        f"{BASE}/{_dataset(api, o)}", {"description": "changed"}), owned=True),
    ("DELETE", f"{BASE}/{{dataset_id}}"): Case("train:all", lambda api, o: Request(
        f"{BASE}/{_dataset(api, o)}", ok=frozenset({204})), owned=True),
    ("POST", f"{BASE}/{{dataset_id}}/images"): Case("train:all", lambda api, o: Request(
        f"{BASE}/{_dataset(api, o)}/images", files={"file": ("a.png", png())}, ok=frozenset({201})), owned=True),
    ("GET", f"{BASE}/{{dataset_id}}/images"): Case("train:all", lambda api, o: Request(
        f"{BASE}/{_dataset(api, o)}/images"), owned=True),
    ("GET", f"{BASE}/{{dataset_id}}/images/{{image_id}}"): Case("train:all", lambda api, o: Request(
        _image(api, o)), owned=True),
    ("GET", f"{BASE}/{{dataset_id}}/images/{{image_id}}/content"): Case("train:all", lambda api, o: Request(
        f"{_image(api, o)}/content"), owned=True),
    ("PATCH", f"{BASE}/{{dataset_id}}/images/{{image_id}}"): Case("train:all", lambda api, o: Request(
        _image(api, o), {"caption": "a cat"}), owned=True),
    ("DELETE", f"{BASE}/{{dataset_id}}/images/{{image_id}}"): Case("train:all", lambda api, o: Request(
        _image(api, o), ok=frozenset({204})), owned=True),
}
