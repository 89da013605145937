"""GET /metrics: Prometheus exposition (the metrics token, or a holder of every permission)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from sdfleet.api.deps import ServicesDep, principal_from_request
from sdfleet.services.metrics import CONTENT_TYPE

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format 0.0.4."},
                       401: {"description": "No credentials, or not the metrics token."},
                       403: {"description": "Signed in without every permission (the admin role)."}})
def metrics(request: Request, services: ServicesDep) -> Response:
    """Queue depth and oldest wait per endpoint, jobs by status, replicas by state, worker memory, job wait/run
    histograms, GPU-seconds per user and HTTP latency. Scrape with `Authorization: Bearer $SDFLEET_METRICS_TOKEN`
    (or as an admin)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and services.metrics.may_scrape(value.strip()):
        return Response(services.metrics.render(None), media_type=CONTENT_TYPE)
    principal = principal_from_request(request, services)
    return Response(services.metrics.render(principal), media_type=CONTENT_TYPE)
