"""/api/v1/generation/options: sampler and schedule names and every field's limits, for forms."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from sdfleet.api.deps import CurrentPrincipal, ServicesDep

router = APIRouter(tags=["inferences"])


@router.get("/generation/options")
def generation_options(principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    """Samplers (with the schedule "Automatic" picks), schedule types, field limits, the work limit."""
    return services.generation.describe()
