"""Authorization matrix entries of the routes the web UI added (form options, preferences, job media)."""

from __future__ import annotations

import uuid

from tests.integration.api.authz_checkpoints import _checkpoint
from tests.integration.api.authz_jobs import own_job
from tests.integration.api.authz_matrix import Case, Request


def _style(api, owner) -> str:
    r = api.client.post("/api/v1/styles", headers=owner.headers, json={"name": uuid.uuid4().hex[:8], "prompt": "p"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _preset(api, owner) -> str:
    r = api.client.post("/api/v1/presets", headers=owner.headers, json={"name": uuid.uuid4().hex[:8], "values": {"steps": "5"}})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def _board(api, owner) -> str:
    r = api.client.post("/api/v1/boards", headers=owner.headers, json={"name": uuid.uuid4().hex[:8]})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _job_of(api, owner) -> str:
    """A job of a user whose case needs no permission: they get the artist role to submit it first."""
    r = api.client.patch(f"/api/v1/users/{owner.username}", headers=api.admin(), json={"roles": ["artist"]})
    assert r.status_code == 200, r.text
    return own_job(api, owner)


def _board_with_job(api, owner) -> str:
    board, job = _board(api, owner), _job_of(api, owner)
    api.client.post(f"/api/v1/boards/{board}/items", headers=owner.headers, json={"job_ids": [job]})
    return f"{board}/items/{job}"


CASES = {
    ("GET", "/api/v1/generation/options"): Case(None, lambda api, o: Request("/api/v1/generation/options")),
    ("GET", "/api/v1/me/preferences"): Case(None, lambda api, o: Request("/api/v1/me/preferences")),
    ("PATCH", "/api/v1/me/preferences"): Case(None, lambda api, o: Request(
        "/api/v1/me/preferences", {"theme": "dark", "generate": {"steps": "20"}})),
    ("GET", "/api/v1/inferences/{job_id}/outputs/{index}/thumbnail"): Case(
        None, lambda api, o: Request(f"/api/v1/inferences/{_job_of(api, o)}/outputs/0/thumbnail",
                                      ok=frozenset({404})), owned=True, notes="no output yet: 404 naming it"),
    ("GET", "/api/v1/inferences/{job_id}/inputs"): Case(
        None, lambda api, o: Request(f"/api/v1/inferences/{_job_of(api, o)}/inputs"), owned=True),
    ("GET", "/api/v1/inferences/{job_id}/inputs/{kind}"): Case(
        None, lambda api, o: Request(f"/api/v1/inferences/{_job_of(api, o)}/inputs/image"), owned=True),
    ("GET", "/api/v1/styles"): Case(None, lambda api, o: Request("/api/v1/styles")),
    ("POST", "/api/v1/styles"): Case(None, lambda api, o: Request(
        "/api/v1/styles", {"name": uuid.uuid4().hex[:8], "prompt": "ink"}, ok=frozenset({201}))),
    ("PATCH", "/api/v1/styles/{style_id}"): Case(None, lambda api, o: Request(
        f"/api/v1/styles/{_style(api, o)}", {"prompt": "x"}), owned=True),
    ("DELETE", "/api/v1/styles/{style_id}"): Case(None, lambda api, o: Request(
        f"/api/v1/styles/{_style(api, o)}", ok=frozenset({204})), owned=True),
    ("GET", "/sdapi/v1/prompt-styles"): Case(None, lambda api, o: Request("/sdapi/v1/prompt-styles")),
    ("GET", "/api/v1/gallery"): Case(None, lambda api, o: Request("/api/v1/gallery")),
    ("GET", "/api/v1/gallery/models"): Case(None, lambda api, o: Request("/api/v1/gallery/models")),
    ("GET", "/api/v1/gallery/{job_id}"): Case(
        None, lambda api, o: Request(f"/api/v1/gallery/{_job_of(api, o)}"), owned=True),
    ("GET", "/api/v1/gallery/{job_id}/outputs/{index}"): Case(
        None, lambda api, o: Request(f"/api/v1/gallery/{_job_of(api, o)}/outputs/0", ok=frozenset({404})),
        owned=True, notes="no output yet: 404 naming it"),
    ("PUT", "/api/v1/gallery/{job_id}/star"): Case(
        None, lambda api, o: Request(f"/api/v1/gallery/{_job_of(api, o)}/star", ok=frozenset({204})), owned=True),
    ("DELETE", "/api/v1/gallery/{job_id}/star"): Case(
        None, lambda api, o: Request(f"/api/v1/gallery/{_job_of(api, o)}/star", ok=frozenset({204})), owned=True),
    ("POST", "/api/v1/gallery/download"): Case(None, lambda api, o: Request(
        "/api/v1/gallery/download", {"job_ids": [_job_of(api, o)]}, ok=frozenset({422})),
        notes="no image yet: refused naming job_ids"),
    ("POST", "/api/v1/gallery/delete"): Case(None, lambda api, o: Request(
        "/api/v1/gallery/delete", {"job_ids": [_job_of(api, o)]})),
    ("GET", "/api/v1/boards"): Case(None, lambda api, o: Request("/api/v1/boards")),
    ("POST", "/api/v1/boards"): Case(None, lambda api, o: Request(
        "/api/v1/boards", {"name": uuid.uuid4().hex[:8]}, ok=frozenset({201}))),
    ("PATCH", "/api/v1/boards/{board_id}"): Case(None, lambda api, o: Request(
        f"/api/v1/boards/{_board(api, o)}", {"name": uuid.uuid4().hex[:8]}), owned=True),
    ("DELETE", "/api/v1/boards/{board_id}"): Case(None, lambda api, o: Request(
        f"/api/v1/boards/{_board(api, o)}", ok=frozenset({204})), owned=True),
    ("POST", "/api/v1/boards/{board_id}/items"): Case(None, lambda api, o: Request(
        f"/api/v1/boards/{_board(api, o)}/items", {"job_ids": [_job_of(api, o)]}), owned=True),
    ("DELETE", "/api/v1/boards/{board_id}/items/{job_id}"): Case(None, lambda api, o: Request(
        f"/api/v1/boards/{_board_with_job(api, o)}"), owned=True),
    ("GET", "/api/v1/me/prompts"): Case(None, lambda api, o: Request("/api/v1/me/prompts")),
    ("GET", "/api/v1/queue"): Case(None, lambda api, o: Request("/api/v1/queue")),
    ("POST", "/api/v1/queue/{job_id}/cancel"): Case(
        None, lambda api, o: Request(f"/api/v1/queue/{_job_of(api, o)}/cancel"), owned=True),
    ("GET", "/api/v1/model-notes"): Case(None, lambda api, o: Request("/api/v1/model-notes")),
    ("GET", "/api/v1/checkpoints/{checkpoint_id}/notes"): Case(None, lambda api, o: Request(
        f"/api/v1/checkpoints/{_checkpoint(api)}/notes")),
    ("PUT", "/api/v1/checkpoints/{checkpoint_id}/notes"): Case("checkpoint:all", lambda api, o: Request(
        f"/api/v1/checkpoints/{_checkpoint(api)}/notes", {"trigger_words": "sks", "notes": "n"})),
    ("PUT", "/api/v1/checkpoints/{checkpoint_id}/preview"): Case("checkpoint:all", lambda api, o: Request(
        f"/api/v1/checkpoints/{_checkpoint(api)}/preview", {"job_id": "0" * 26, "index": 0}, ok=frozenset({404})),
        notes="no such job: 404 naming it"),
    ("GET", "/api/v1/checkpoints/{checkpoint_id}/preview"): Case(None, lambda api, o: Request(
        f"/api/v1/checkpoints/{_checkpoint(api)}/preview", ok=frozenset({404})), notes="no preview set: 404"),
    ("GET", "/api/v1/presets"): Case(None, lambda api, o: Request("/api/v1/presets")),
    ("POST", "/api/v1/presets"): Case(None, lambda api, o: Request(
        "/api/v1/presets", {"name": "Portrait", "values": {"width": "512"}})),
    ("DELETE", "/api/v1/presets/{preset_id}"): Case(None, lambda api, o: Request(
        f"/api/v1/presets/{_preset(api, o)}", ok=frozenset({204})), owned=True),
}
