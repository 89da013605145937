"""Authorization matrix entries of the routes the web UI added (form options, preferences, job media)."""

from __future__ import annotations

from tests.integration.api.authz_jobs import own_job
from tests.integration.api.authz_matrix import Case, Request

INFER = "inference:all"

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
}
