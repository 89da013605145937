"""/api/v1/me/preferences: the caller's web UI preferences (theme, remembered generate form)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from sdfleet.api.deps import CurrentPrincipal, ServicesDep
from sdfleet.api.schemas.base import Strict

router = APIRouter(tags=["preferences"])


class PreferencesPublic(BaseModel):
    theme: Literal["system", "light", "dark"]
    generate: dict[str, Any]


class PreferencesUpdate(Strict):
    theme: Literal["system", "light", "dark"] | None = None
    generate: dict[str, Any] | None = Field(default=None, description="The generate form's values; replaces them.")


@router.get("/me/preferences", response_model=PreferencesPublic)
def get_preferences(principal: CurrentPrincipal, services: ServicesDep) -> PreferencesPublic:
    """Your theme and the generate form's remembered values."""
    return PreferencesPublic(**services.preferences.get(principal))


@router.patch("/me/preferences", response_model=PreferencesPublic)
def update_preferences(body: PreferencesUpdate, principal: CurrentPrincipal,
                       services: ServicesDep) -> PreferencesPublic:
    """Change your theme and/or the remembered generate form (only the fields sent)."""
    return PreferencesPublic(**services.preferences.update(principal, body.model_dump(exclude_unset=True)))
