"""Authorization matrix entries of the model registry (/api/v1/checkpoints)."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from tests.fixtures.runtime import Api
from tests.integration.api.authz_matrix import Actor, Case, Request
from tests.integration.checkpoints.model_bytes import lora_bytes

BASE = "/api/v1/checkpoints"
NO_SUCH_ID = "0" * 26
#: a part body the matrix can send as `json=`: one string in a list serialises the same with any separators
PART_JSON = ["x" * 60]
PART_BODY = b'["' + b"x" * 60 + b'"]'


def _name() -> str:
    return f"m-{uuid.uuid4().hex[:8]}.safetensors"


def _checkpoint(api: Api) -> str:
    """A fresh LoRA everyone may see, registered by the operator."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lora.safetensors"
        path.write_bytes(lora_bytes())
        return api.runtime.services.checkpoints.register_file(
            path, name=_name(), model_type="Lora", allowed_roles=["*"]).id


def _upload(api: Api, owner: Actor, data: bytes | None = None) -> str:
    """An upload of `owner` (of `data`, all parts sent), or a dummy id when the owner may not upload."""
    size = len(data) if data is not None else len(PART_BODY)
    r = api.client.post(f"{BASE}/uploads", headers=owner.headers,
                        json={"filename": _name(), "type": "Lora", "size": size})
    if r.status_code != 201:
        return NO_SUCH_ID
    upload_id = r.json()["upload_id"]
    if data is not None:
        api.client.put(f"{BASE}/uploads/{upload_id}/parts/1", headers=owner.headers, content=data)
    return upload_id


def _import(api: Api, owner: Actor) -> str:
    r = api.client.post(f"{BASE}/imports", headers=owner.headers,
                        json={"url": "http://models.invalid/x.safetensors", "type": "Lora"})
    return r.json()["id"] if r.status_code == 202 else NO_SUCH_ID


CASES: dict[tuple[str, str], Case] = {
    ("GET", BASE): Case(None, lambda api, o: Request(f"{BASE}?type=Lora")),
    ("GET", f"{BASE}/{{checkpoint_id}}"): Case(None, lambda api, o: Request(f"{BASE}/{_checkpoint(api)}")),
    ("GET", f"{BASE}/{{checkpoint_id}}/download"): Case(
        None, lambda api, o: Request(f"{BASE}/{_checkpoint(api)}/download")),
    ("PATCH", f"{BASE}/{{checkpoint_id}}"): Case("checkpoint:all", lambda api, o: Request(
        f"{BASE}/{_checkpoint(api)}", {"name": _name()})),
    ("DELETE", f"{BASE}/{{checkpoint_id}}"): Case("checkpoint:all", lambda api, o: Request(
        f"{BASE}/{_checkpoint(api)}", ok=frozenset({204}))),
    ("POST", f"{BASE}/uploads"): Case("checkpoint:all", lambda api, o: Request(
        f"{BASE}/uploads", {"filename": _name(), "type": "Lora", "size": 100}, ok=frozenset({201}))),
    ("GET", f"{BASE}/uploads/{{upload_id}}"): Case(
        "checkpoint:all", lambda api, o: Request(f"{BASE}/uploads/{_upload(api, o)}"), owned=True),
    # The body of a part is raw bytes; PART_JSON sent as JSON is the 64 bytes this upload announced.
    ("PUT", f"{BASE}/uploads/{{upload_id}}/parts/{{part_number}}"): Case(
        "checkpoint:all", lambda api, o: Request(f"{BASE}/uploads/{_upload(api, o)}/parts/1", PART_JSON), owned=True),
    ("POST", f"{BASE}/uploads/{{upload_id}}/complete"): Case(
        "checkpoint:all", lambda api, o: Request(
            f"{BASE}/uploads/{_upload(api, o, lora_bytes())}/complete", {}), owned=True),
    ("POST", f"{BASE}/imports"): Case("checkpoint:all", lambda api, o: Request(
        f"{BASE}/imports", {"url": "http://models.invalid/x.safetensors", "type": "Lora"}, ok=frozenset({202}))),
    ("GET", f"{BASE}/imports/{{import_id}}"): Case(
        "checkpoint:all", lambda api, o: Request(f"{BASE}/imports/{_import(api, o)}"), owned=True),
}
