"""/api/v1/health."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from sdfleet.api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health(services: ServicesDep) -> JSONResponse:
    """Whether the database and the object store answer (503 when one does not)."""
    report = services.health.report()
    return JSONResponse({"status": "ok" if report.ok else "unavailable", "checks": report.checks},
                        status_code=200 if report.ok else 503)
