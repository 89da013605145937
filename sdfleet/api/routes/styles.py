"""/api/v1/styles (prompt styles: yours and the team's) and /api/v1/presets (your saved form values)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, StrictStr

from sdfleet.api.deps import CurrentPrincipal, ServicesDep
from sdfleet.api.schemas.base import ListPage, Strict
from sdfleet.domain.accounts import Principal
from sdfleet.domain.permissions import Permission
from sdfleet.domain.styles import GenerationPreset, PromptStyle

router = APIRouter(tags=["styles"])


class StylePublic(BaseModel):
    id: str
    name: str
    prompt: str
    negative_prompt: str
    scope: Literal["user", "team"]
    editable: bool
    updated_at: datetime

    @classmethod
    def of(cls, style: PromptStyle, principal: Principal) -> StylePublic:
        return cls(id=style.id, name=style.name, prompt=style.prompt, negative_prompt=style.negative_prompt,
                   scope="team" if style.team else "user", updated_at=style.updated_at,
                   editable=not style.team or principal.can(Permission.STYLE_ALL))


class StyleCreate(Strict):
    name: StrictStr = Field(max_length=100)
    prompt: StrictStr = Field(default="", max_length=10_000, description="`{prompt}` marks where the prompt goes.")
    negative_prompt: StrictStr = Field(default="", max_length=10_000)
    scope: Literal["user", "team"] = Field(default="user", description="team: shared with everyone (style:all).")


class StyleUpdate(Strict):
    name: StrictStr | None = Field(default=None, max_length=100)
    prompt: StrictStr | None = Field(default=None, max_length=10_000)
    negative_prompt: StrictStr | None = Field(default=None, max_length=10_000)


class PresetPublic(BaseModel):
    id: str
    name: str
    values: dict[str, Any]
    updated_at: datetime | None

    @classmethod
    def of(cls, preset: GenerationPreset) -> PresetPublic:
        return cls(id=preset.id, name=preset.name, values=preset.values, updated_at=preset.updated_at)


class PresetSave(Strict):
    name: StrictStr = Field(max_length=100)
    values: dict[str, Any] = Field(description="Generate-form field names and values.")


@router.get("/styles", response_model=ListPage[StylePublic])
def list_styles(principal: CurrentPrincipal, services: ServicesDep) -> ListPage[StylePublic]:
    """Your prompt styles and the team's, by name (one page: at most 500 of each)."""
    return ListPage(items=[StylePublic.of(s, principal) for s in services.styles.list(principal)], next_cursor=None)


@router.post("/styles", response_model=StylePublic, status_code=201)
def create_style(body: StyleCreate, principal: CurrentPrincipal, services: ServicesDep) -> StylePublic:
    """A new style of yours, or of the team's (`scope: team`, needs `style:all`)."""
    style = services.styles.create(principal, name=body.name, prompt=body.prompt,
                                   negative_prompt=body.negative_prompt, team=body.scope == "team")
    return StylePublic.of(style, principal)


@router.patch("/styles/{style_id}", response_model=StylePublic)
def update_style(style_id: str, body: StyleUpdate, principal: CurrentPrincipal,
                 services: ServicesDep) -> StylePublic:
    """Change one of your styles (a team style: `style:all`)."""
    return StylePublic.of(services.styles.update(principal, style_id, body.model_dump(exclude_none=True)), principal)


@router.delete("/styles/{style_id}", status_code=204)
def delete_style(style_id: str, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """Delete one of your styles (a team style: `style:all`)."""
    services.styles.delete(principal, style_id)
    return Response(status_code=204)


@router.get("/presets", response_model=ListPage[PresetPublic])
def list_presets(principal: CurrentPrincipal, services: ServicesDep) -> ListPage[PresetPublic]:
    """Your saved generate-form presets, by name."""
    return ListPage(items=[PresetPublic.of(p) for p in services.presets.list(principal)], next_cursor=None)


@router.post("/presets", response_model=PresetPublic)
def save_preset(body: PresetSave, principal: CurrentPrincipal, services: ServicesDep) -> PresetPublic:
    """Save form values under a name (replacing your preset of that name)."""
    return PresetPublic.of(services.presets.save(principal, name=body.name, values=body.values))


@router.delete("/presets/{preset_id}", status_code=204)
def delete_preset(preset_id: str, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """Delete one of your presets."""
    services.presets.delete(principal, preset_id)
    return Response(status_code=204)
