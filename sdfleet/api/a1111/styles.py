"""/sdapi/v1/prompt-styles: your prompt styles and the team's, in A1111's shape."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from sdfleet.api.deps import CurrentPrincipal, ServicesDep

router = APIRouter(prefix="/sdapi/v1", tags=["a1111"])


class PromptStyleItem(BaseModel):
    name: str
    prompt: str
    negative_prompt: str


@router.get("/prompt-styles", response_model=list[PromptStyleItem])
def prompt_styles(principal: CurrentPrincipal, services: ServicesDep) -> list[PromptStyleItem]:
    """Styles as A1111 lists them; your own style shadows a team style of the same name."""
    return [PromptStyleItem(**s) for s in services.styles.a1111_styles(principal)]
