"""Authorization matrix entry of the worker's assignment route (worker tokens only)."""

from __future__ import annotations

from tests.fixtures.runtime import Api
from tests.integration.api.authz_matrix import Actor, Case, Request

INFER = "inference:all"


def _assignment(api: Api, owner: Actor) -> Request:
    issued = api.runtime.services.workers.register(name="assigned", endpoint="default")
    return Request("/api/v1/worker/assignment", headers={"Authorization": f"Bearer {issued.token}"})


CASES = {
    ("GET", "/api/v1/worker/assignment"): Case(INFER, _assignment, worker=True,
                                               notes="each worker reads its own endpoint's assignment"),
}
