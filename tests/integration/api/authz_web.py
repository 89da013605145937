"""Authorization matrix entries of the routes the web UI added (form options, preferences, job media)."""

from __future__ import annotations

import uuid

from tests.integration.api.authz_jobs import own_job
from tests.integration.api.authz_matrix import Case, Request

INFER = "inference:all"


def _style(api, owner) -> str:
    r = api.client.post("/api/v1/styles", headers=owner.headers, json={"name": uuid.uuid4().hex[:8], "prompt": "p"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _preset(api, owner) -> str:
    r = api.client.post("/api/v1/presets", headers=owner.headers, json={"name": uuid.uuid4().hex[:8], "values": {"steps": "5"}})
    assert r.status_code == 200, r.text
    return r.json()["id"]


CASES = {
    ("GET", "/api/v1/generation/options"): Case(None, lambda api, o: Request("/api/v1/generation/options")),
    ("GET", "/api/v1/me/preferences"): Case(None, lambda api, o: Request("/api/v1/me/preferences")),
    ("PATCH", "/api/v1/me/preferences"): Case(None, lambda api, o: Request(
        "/api/v1/me/preferences", {"theme": "dark", "generate": {"steps": "20"}})),
    ("GET", "/api/v1/inferences/{job_id}/outputs/{index}/thumbnail"): Case(
        INFER, lambda api, o: Request(f"/api/v1/inferences/{own_job(api, o)}/outputs/0/thumbnail",
                                      ok=frozenset({404})), owned=True, notes="no output yet: 404 naming it"),
    ("GET", "/api/v1/inferences/{job_id}/inputs"): Case(
        INFER, lambda api, o: Request(f"/api/v1/inferences/{own_job(api, o)}/inputs"), owned=True),
    ("GET", "/api/v1/inferences/{job_id}/inputs/{kind}"): Case(
        INFER, lambda api, o: Request(f"/api/v1/inferences/{own_job(api, o)}/inputs/image"), owned=True),
    ("GET", "/api/v1/styles"): Case(None, lambda api, o: Request("/api/v1/styles")),
    ("POST", "/api/v1/styles"): Case(None, lambda api, o: Request(
        "/api/v1/styles", {"name": uuid.uuid4().hex[:8], "prompt": "ink"}, ok=frozenset({201}))),
    ("PATCH", "/api/v1/styles/{style_id}"): Case(None, lambda api, o: Request(
        f"/api/v1/styles/{_style(api, o)}", {"prompt": "x"}), owned=True),
    ("DELETE", "/api/v1/styles/{style_id}"): Case(None, lambda api, o: Request(
        f"/api/v1/styles/{_style(api, o)}", ok=frozenset({204})), owned=True),
    ("GET", "/sdapi/v1/prompt-styles"): Case(None, lambda api, o: Request("/sdapi/v1/prompt-styles")),
    ("GET", "/api/v1/presets"): Case(None, lambda api, o: Request("/api/v1/presets")),
    ("POST", "/api/v1/presets"): Case(None, lambda api, o: Request(
        "/api/v1/presets", {"name": "Portrait", "values": {"width": "512"}})),
    ("DELETE", "/api/v1/presets/{preset_id}"): Case(None, lambda api, o: Request(
        f"/api/v1/presets/{_preset(api, o)}", ok=frozenset({204})), owned=True),
}
